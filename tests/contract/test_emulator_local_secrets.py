"""The emulator's own secrets, as local mode uses them: an ARM token it makes
on first start (``--arm-token-file``) instead of the public test one, and
the control API (``/_emulator/``) closed to every client that is neither on
the emulator's loopback address nor holding the control secret.

The "other" client is this test process itself, calling the emulator on a
non-loopback address of this machine: to the emulator it is any machine on
its network, as compute instances are (their own attack is in
tests/integration/test_local_mode_trusts_no_instance_docker.py)."""

from __future__ import annotations

import socket
import stat

import pytest
import requests

from aml_emulator.config import DEFAULT_ARM_TOKEN
from tests.harness.emulator import CONTROL_SECRET_HEADER, EmulatorProcess


def non_loopback_address() -> str | None:
    """An address of this machine other than the loopback (the one its default route leaves by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def remote_emulator(tmp_path_factory):
    """An emulator listening on a non-loopback address only, with an ARM token file."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address besides the loopback")
    state = tmp_path_factory.mktemp("emu-remote")
    emu = EmulatorProcess(state, ["--host", address, "--hostname", address,
                                  "--arm-token-file", str(state / "shared" / "arm-token")])
    emu.base_url = f"https://{address}:{emu.port}"
    emu.start()
    yield emu
    emu.stop()


def anonymous(emu, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, emu.base_url + path, verify=emu.ca_file, timeout=30, **kw)


@pytest.mark.parametrize("method,path", [
    ("GET", "/_emulator/instances"),
    ("POST", "/_emulator/instances/ci-any/force"),
    ("POST", "/_emulator/reset"),
    ("PUT", "/_emulator/roles"),
    ("POST", "/_emulator/clock"),
    ("GET", "/_emulator/aad/users"),
    ("POST", "/_emulator/aad/apps"),
    ("GET", "/%5Femulator/instances"),  # encoded: the same path once decoded
])
def test_control_api_refuses_a_remote_client_without_the_secret(remote_emulator, method, path):
    r = anonymous(remote_emulator, method, path, json={})
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert CONTROL_SECRET_HEADER in r.json()["error"] and "control-secret" in r.json()["error"]
    r = anonymous(remote_emulator, method, path, json={}, headers={CONTROL_SECRET_HEADER: "guessed"})
    assert r.status_code == 401


def test_control_api_admits_the_secret_and_health_is_open(remote_emulator):
    assert anonymous(remote_emulator, "GET", "/_emulator/health").json()["status"] == "ok"
    secret = (remote_emulator.state_dir / "control-secret").read_text().strip()
    r = anonymous(remote_emulator, "GET", "/_emulator/instances", headers={CONTROL_SECRET_HEADER: secret})
    assert r.status_code == 200 and r.json() == []


def test_control_api_needs_no_secret_on_the_loopback(emu):
    r = requests.get(f"{emu.base_url}/_emulator/instances", verify=emu.ca_file, timeout=30)
    assert emu.base_url.startswith("https://127.0.0.1:") and r.status_code == 200


def test_arm_refuses_the_public_token_and_takes_the_one_it_made(remote_emulator):
    ws = remote_emulator.ws_path() + "/computes"
    assert remote_emulator.arm("GET", ws, token=DEFAULT_ARM_TOKEN).status_code == 401
    made = (remote_emulator.state_dir / "shared" / "arm-token").read_text().strip()
    assert made != DEFAULT_ARM_TOKEN and len(made) >= 40
    assert remote_emulator.arm("GET", ws, token=made).status_code == 200
    for name in ("shared/arm-token", "control-secret"):
        assert stat.S_IMODE((remote_emulator.state_dir / name).stat().st_mode) == 0o600, name


def test_the_secrets_are_kept_across_restarts(tmp_path):
    emu = EmulatorProcess(tmp_path, ["--arm-token-file", str(tmp_path / "arm-token")]).start()
    try:
        token, secret = emu.token, emu.control_secret
    finally:
        emu.stop()
    again = EmulatorProcess(tmp_path, ["--arm-token-file", str(tmp_path / "arm-token")]).start()
    try:
        assert (again.token, again.control_secret) == (token, secret)
        assert again.arm("GET", again.ws_path() + "/computes").status_code == 200
    finally:
        again.stop()
