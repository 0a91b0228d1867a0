"""Helpers for tests that drive a real hub against the emulator."""

from __future__ import annotations

import pytest

from tests.hubharness import Hub


def instances(emu) -> dict:
    """Every instance the emulator has, by name."""
    return {i["name"]: i for i in emu.control("GET", "/_emulator/instances").json()}


def instance(emu, name: str) -> dict | None:
    return instances(emu).get(name)


def instance_of(emu, user: str, server: str = "") -> str:
    """The name of the one instance tagged as ``user``'s server."""
    names = [i["name"] for i in instances(emu).values()
             if i["tags"].get("jupyterhub-user") == user and i["tags"].get("jupyterhub-server") == (server or "default")]
    assert len(names) == 1, (user, server, names)
    return names[0]


def state_of(emu, name: str) -> str | None:
    return (instance(emu, name) or {}).get("state")


def make_instance(emu, name: str, tags: dict, ssh_public_key: str | None = None, vm_size: str = "Standard_DS2_v2",
                  workspace: str | None = None) -> None:
    """An instance made straight through ARM (as by somebody else, or by an older hub), left Running."""
    pp = {"vmSize": vm_size}
    if ssh_public_key:
        pp["sshSettings"] = {"sshPublicAccess": "Enabled", "adminPublicKey": ssh_public_key}
    path = (emu.ws_path(ws=workspace) if workspace else emu.ws_path()) + f"/computes/{name}"
    r = emu.arm("PUT", path, json={"tags": tags, "properties": {"computeType": "ComputeInstance", "properties": pp}})
    assert r.status_code in (200, 201), r.text
    emu.control("POST", "/_emulator/wait").raise_for_status()
    assert state_of(emu, name) == "Running"


def arm_calls(emu, name: str) -> list[tuple[str, str]]:
    """(method, path tail) of every ARM request about instance ``name``."""
    return [(r["method"], r["path"].split(f"/computes/{name}", 1)[1]) for r in emu.requests_seen()
            if f"/computes/{name}" in r["path"]]


@pytest.fixture
def make_hub(emulator, emu, tmp_path):
    """make_hub(extra_config) -> a started hub; all of them stopped at the end."""
    hubs = []

    def make(extra: str = "", **kw) -> Hub:
        hub = Hub(tmp_path / f"hub{len(hubs)}", emulator, extra, **kw).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()


def spawn_ready(hub: Hub, user: str, server: str = "", options: dict | None = None) -> list[dict]:
    r = hub.spawn(user, server, options)
    assert r.status_code in (201, 202), r.text
    events = hub.progress(user, server)
    assert events[-1].get("ready"), (events, hub.log_tail())
    return events
