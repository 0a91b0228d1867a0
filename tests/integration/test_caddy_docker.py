"""docker/Caddyfile in the caddy:2 image users pull: a certificate for a
user's host only when the hub confirms the name (on-demand TLS's ``ask``),
and an admin's wildcard certificate (TLS_CERTIFICATES_DIR) used for the hub
and every user's host with nothing asked of Let's Encrypt."""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.net import free_port
from tests.harness.repo import ROOT

pytestmark = pytest.mark.docker

CADDY_IMAGE = "caddy:2"
# the hub's side of the ask, played by a second Caddy: alice is a user of the hub, nobody else is
ASK_CADDYFILE = """{
	admin off
}
:8082 {
	@alice query domain=alice.{$HOST}
	respond @alice "ok" 200
	respond "no such user" 404
}
"""


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def wildcard_bundle(folder: Path, host: str) -> Path:
    """An organisation's CA and a certificate for host and *.host signed by it, as the PEM bundle Caddy loads."""
    folder.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=test org CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={host}",
            "-keyout", "hub.key", "-out", "hub.csr", cwd=folder)
    (folder / "ext.cnf").write_text(f"subjectAltName=DNS:{host},DNS:*.{host}\n")
    openssl("x509", "-req", "-in", "hub.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "hub.crt", cwd=folder)
    certs = folder / "certs"
    certs.mkdir()
    (certs / "hub-wildcard.pem").write_text((folder / "hub.crt").read_text() + (folder / "hub.key").read_text())
    return folder / "ca.pem"


def handshake(port: int, name: str, cafile: str | None) -> str:
    """The certificate's subject names Caddy presents for ``name`` (verified against ``cafile`` when given)."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert(binary_form=not cafile)
    return str(cert)


@pytest.fixture
def caddy(docker_client, tmp_path):
    """run(host, certificates_dir) -> (port, container): the product's Caddyfile, with a "hub" that answers its ask."""
    network = docker_client.networks.create(f"aml-caddy-test-{secrets.token_hex(3)}")
    started = []

    def run(host: str, certificates: Path) -> tuple[int, object]:
        ask = tmp_path / "ask.Caddyfile"
        ask.write_text(ASK_CADDYFILE)
        hub = docker_client.containers.create(
            CADDY_IMAGE, environment={"HOST": host}, volumes={str(ask): {"bind": "/etc/caddy/Caddyfile", "mode": "ro"}})
        started.append(hub)
        network.connect(hub, aliases=["hub"])
        hub.start()
        port = free_port()
        front = docker_client.containers.run(
            CADDY_IMAGE, detach=True, network=network.name, ports={"8443/tcp": ("127.0.0.1", port)},
            environment={"HOST": host, "HTTPS_PORT": "8443", "HTTP_PORT": "8080", "CADDY_EMAIL_OPTION": ""},
            volumes={str(ROOT / "docker" / "Caddyfile"): {"bind": "/etc/caddy/Caddyfile", "mode": "ro"},
                     str(certificates): {"bind": "/etc/caddy/certificates", "mode": "ro"}})
        started.append(front)
        deadline = time.monotonic() + 30
        while b"serving initial configuration" not in front.logs():
            assert time.monotonic() < deadline, front.logs()[-3000:].decode(errors="replace")
            time.sleep(0.2)
        return port, front

    yield run
    for container in started:
        container.remove(v=True, force=True)  # and the anonymous volumes of caddy:2 (/data, /config)
    network.remove()


def test_a_users_host_gets_a_certificate_only_when_the_hub_names_it(caddy, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    port, front = caddy("localhost", empty)
    assert handshake(port, "localhost", None)  # the hub's own name
    assert handshake(port, "alice.localhost", None)  # a user of the hub: issued at the first handshake
    for made_up in ("mallory.localhost", "x" * 40 + ".localhost"):
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(port, made_up, None)
    logs = front.logs().decode(errors="replace")
    assert '"identifier":"alice.localhost"' in logs, logs[-3000:]
    assert '"identifier":"mallory.localhost"' not in logs  # the hub said no: nothing obtained


def test_an_admins_wildcard_certificate_serves_the_hub_and_every_users_host_and_nothing_is_asked_of_acme(
        caddy, tmp_path):
    host = "hub.example.test"
    ca = wildcard_bundle(tmp_path / "org", host)
    port, front = caddy(host, tmp_path / "org" / "certs")
    for name in (host, f"alice.{host}", f"u-bobexamp--1234567.{host}"):
        assert f"*.{host}" in handshake(port, name, str(ca)), name  # verified against the organisation's CA
    logs = front.logs().decode(errors="replace")
    assert "obtaining certificate" not in logs and "acme" not in logs.lower(), logs[-3000:]
