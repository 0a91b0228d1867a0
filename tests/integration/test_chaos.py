"""A bounded, seeded random run of what goes wrong in a hub's life, then the
invariants that must hold whatever happened:

1. every Running instance of this hub belongs to an active server;
2. no server is listed on a stopped or missing instance;
3. every file written is still there;
4. no user can read another's file, and each server's instance is tagged as its own.

The default seed is fixed, so CI is repeatable; CHAOS_SEED=random (or a
number) explores other runs, CHAOS_STEPS makes them longer. Every run prints
its seed.
"""

from __future__ import annotations

import os
import random
import time

import requests

from tests.harness.emulator import instances, state_of

SERVERS = [("amy", ""), ("amy", "b"), ("ben", ""), ("cat", "")]
OPERATIONS = {  # name: weight
    "spawn": 6, "stop": 3, "shutdown_inside": 2, "hub_kill": 1, "emulator_restart": 1,
    "throttle": 1, "errors": 1, "create_failed": 1,
}


class Run:
    def __init__(self, hub, emu, rng):
        self.hub, self.emu, self.rng = hub, emu, rng
        self.files: dict[tuple[str, str], dict[str, str]] = {}
        self.journal: list[str] = []

    def model(self, user, server):
        try:
            return self.hub.server_model(user, server)
        except (requests.RequestException, KeyError):
            return None

    def wait_settled(self, user, server, timeout=120):
        """Until the server is ready or gone (not pending)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.hub.server_model(user, server)
            except requests.RequestException:
                m = {"pending": "unreachable"}
            if m is None or (m.get("ready") and not m.get("pending")):
                return m
            time.sleep(0.5)
        raise AssertionError(f"{user}/{server} still pending after {timeout} s\n{self.journal}\n{self.hub.log_tail()}")

    def write_file(self, user, server, step):
        name, text = f"chaos-{user}-{server or 'default'}-{step}.txt", f"{user}/{server} at step {step}"
        r = self.hub.user_request("PUT", user, f"api/contents/{name}", server=server,
                                  json={"type": "file", "format": "text", "content": text})
        if r.status_code in (200, 201):
            self.files.setdefault((user, server), {})[name] = text

    # ---- operations ---------------------------------------------------------

    def spawn(self, step, user, server):
        if self.model(user, server) is not None:
            return "already running"
        r = self.hub.spawn(user, server)
        if r.status_code not in (201, 202):
            return f"refused {r.status_code}"
        m = self.wait_settled(user, server)
        if m is not None:
            self.write_file(user, server, step)
            return "ready"
        return "failed"

    def stop(self, step, user, server):
        if self.model(user, server) is None:
            return "not running"
        self.hub.api("DELETE", self.hub.server_path(user, server))
        self.hub.wait_for(lambda: self.model(user, server) is None, 90, what=f"{user}/{server} to stop")
        return "stopped"

    def shutdown_inside(self, step, user, server):
        if not (self.model(user, server) or {}).get("ready"):
            return "not running"
        try:
            self.hub.user_request("POST", user, "api/shutdown", server=server)
        except requests.RequestException:
            pass
        self.hub.wait_for(lambda: self.model(user, server) is None, 90, what="poll to notice the shutdown")
        return "shut down"

    def hub_kill(self, step, *_):
        self.hub.kill()
        self.hub.start()
        return "hub killed and restarted"

    def emulator_restart(self, step, *_):
        self.emu.stop()
        self.emu.start()
        return "emulator restarted"

    def throttle(self, step, *_):
        self.emu.fault(kind="throttle", count=3, retry_after=0)
        return "3 throttled calls ahead"

    def errors(self, step, *_):
        self.emu.fault(kind="error", status=503, count=3)
        return "3 failed calls ahead"

    def create_failed(self, step, *_):
        self.emu.fault(kind="create_failed", code="AllocationFailed", message="no capacity (chaos)")
        return "the next create fails"


def test_invariants_hold_after_a_random_run(make_hub, emulator, emu):
    chosen = os.environ.get("CHAOS_SEED") or "42"
    seed = random.randrange(1_000_000) if chosen == "random" else int(chosen)
    steps = int(os.environ.get("CHAOS_STEPS") or 14)
    print(f"\nchaos: CHAOS_SEED={seed} CHAOS_STEPS={steps}")
    rng = random.Random(seed)
    hub = make_hub("""
        c.AMLSpawner.reconcile_interval = 2
        c.AMLSpawner.retry_total = 1
    """)
    run = Run(hub, emulator, rng)
    for user in {u for u, _ in SERVERS}:
        hub.create_user(user)
    names, weights = zip(*OPERATIONS.items())
    for step in range(steps):
        op = rng.choices(names, weights)[0]
        user, server = rng.choice(SERVERS)
        outcome = getattr(run, op)(step, user, server)
        run.journal.append(f"{step:2d} {op} {user}/{server or 'default'}: {outcome}")
        print("chaos:", run.journal[-1], flush=True)

    # let everything come to rest: no faults, no spawn pending, the reconciler's passes
    emu.control("DELETE", "/_emulator/faults")
    for user, server in SERVERS:
        run.wait_settled(user, server)
    time.sleep(3 * 2 + 2)
    emu.control("POST", "/_emulator/wait")
    journal = "\n".join(run.journal)
    hub_id = hub.hub_id
    servers = {(u, s): run.model(u, s) for u, s in SERVERS}

    # 1. every Running instance of this hub belongs to an active server
    for name, inst in instances(emu).items():
        tags = inst["tags"]
        if tags.get("jupyterhub-hub") != hub_id or inst["state"] != "Running":
            continue
        key = (tags["jupyterhub-user"], "" if tags["jupyterhub-server"] == "default" else tags["jupyterhub-server"])
        assert (servers.get(key) or {}).get("ready"), f"{name} runs for {key} with no server\n{journal}"

    # 2. no server is listed on a stopped or missing instance
    for (user, server), m in servers.items():
        if m and m.get("ready"):
            name = hub.api("GET", f"/users/{user}", params={"include_stopped_servers": "1"}).json()[
                "servers"][server]["state"]["instance_name"]
            assert state_of(emu, name) == "Running", f"{user}/{server} is listed on {name}\n{journal}"

    # 3. every file written is still there (starting the servers that are not running)
    for (user, server), files in run.files.items():
        if not (run.model(user, server) or {}).get("ready"):
            hub.spawn(user, server)
            assert run.wait_settled(user, server, 180), f"{user}/{server} does not start\n{journal}"
        for fname, text in files.items():
            r = hub.user_get(user, f"api/contents/{fname}", server=server)
            assert r.status_code == 200 and r.json()["content"] == text, f"{user}/{server} lost {fname}\n{journal}"

    # 4. nobody reads another's file; each instance is tagged as its server's
    owners = list(run.files)
    for mine in owners:
        state = hub.api("GET", f"/users/{mine[0]}", params={"include_stopped_servers": "1"}).json()[
            "servers"][mine[1]]["state"]
        tags = instances(emu)[state["instance_name"]]["tags"]
        assert (tags["jupyterhub-user"], tags["jupyterhub-server"]) == (mine[0], mine[1] or "default")
        for theirs in owners:
            if theirs == mine:
                continue
            for fname in run.files[theirs]:
                r = hub.user_get(mine[0], f"api/contents/{fname}", server=mine[1])
                assert r.status_code == 404, f"{mine} reads {theirs}'s {fname}\n{journal}"
