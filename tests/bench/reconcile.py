"""What watching the servers costs ARM, and how fast an orphan is stopped.

- ARM requests per hour for N running servers in redirect mode (where 0.1 read
  every instance at every poll), with the reconciler off (0.1's way: one read
  per server per poll) and on (one shared list per interval), side by side in
  one run. Both intervals are scaled down by the same factor and the counts
  scaled back: JupyterHub's 30 s poll becomes POLL_S, the 300 s reconcile
  interval RECONCILE_S.
- Seconds from an orphan appearing (a Running instance of this hub with no
  server) to its Stopped, at the scaled interval, in seconds and in intervals.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from aml_emulator.aad import IdentityConfig
from aml_jupyterhub.ownership import Owner
from tests.bench.common import kind_of
from tests.harness.emulator import EmulatorProcess
from tests.harness.hub import Hub

REAL_POLL_S, REAL_RECONCILE_S = 30, 300
SCALE = 10
POLL_S, RECONCILE_S = REAL_POLL_S / SCALE, REAL_RECONCILE_S / SCALE
WINDOW_S = 120


def _hub(tmp: Path, emu, reconcile: float) -> Hub:
    extra = (f'c.AMLSpawner.connect_mode = "redirect"\nc.Authenticator.enable_auth_state = True\n'
             f"c.Spawner.poll_interval = {POLL_S}\nc.Spawner.poll_jitter = 0\n"
             f"c.AMLSpawner.reconcile_interval = {reconcile}\nc.JupyterHub.concurrent_spawn_limit = 0\n")
    return Hub(tmp, emu, extra).start()


def _spawn_all(hub: Hub, users: list[str], tid: str) -> None:
    for i, user in enumerate(users):
        hub.create_user(user)
        hub.api("PATCH", f"/users/{user}", json={"auth_state": {"user": {
            "oid": f"00000000-0000-4000-8000-{i:012d}", "tid": tid}}}).raise_for_status()
        r = hub.api("POST", f"/users/{user}/server", json={"user_options": {}})
        assert r.status_code in (201, 202), r.text
    hub.wait_for(lambda: all((hub.server_model(u) or {}).get("ready") for u in users), 900, 2,
                 what="every server to be ready")


def bench_arm_reads(n: int) -> None:
    tid = IdentityConfig.load(None).tenant_id
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emu = EmulatorProcess(tmp / "emu", ["--transition", "all=0", "--poll-interval", "0.2"]).start()
        emu.control("PUT", "/_emulator/quota", json={"family": "standardDSv2Family", "limit": 10_000})
        emu.control("PUT", "/_emulator/quota", json={"family": "total", "limit": 10_000})
        try:
            for label, reconcile in (("reconciler off (0.1: a read per server per poll)", 0),
                                     (f"reconciler on (one list per {REAL_RECONCILE_S} s)", RECONCILE_S)):
                hub = _hub(tmp / f"hub-{reconcile}", emu, reconcile)
                users = [f"r{int(reconcile)}u{i}" for i in range(n)]
                try:
                    _spawn_all(hub, users, tid)
                    emu.control("DELETE", "/_emulator/requests")
                    time.sleep(WINDOW_S)
                    seen = [kind_of(e) for e in emu.requests_seen()]
                    ok = sum(1 for u in users if (hub.server_model(u) or {}).get("ready"))
                finally:
                    for u in users:
                        hub.api("DELETE", f"/users/{u}/server")
                    hub.wait_for(lambda: all(hub.server_model(u) is None for u in users), 300, 2, what="stops")
                    hub.stop()
                per_hour = len(seen) * 3600 / WINDOW_S / SCALE
                results[label] = (len(seen), per_hour, ok, sorted(set(seen)))
        finally:
            emu.reset()
            emu.stop()
    print(f"ARM requests to watch {n} running servers (redirect mode), polls every {POLL_S:g} s and lists every "
          f"{RECONCILE_S:g} s over {WINDOW_S} s, scaled x{SCALE} to JupyterHub's {REAL_POLL_S} s poll:")
    for label, (count, per_hour, ok, kinds) in results.items():
        print(f"  {label:<52} {count:>6} in the window -> {per_hour:>8.0f} per hour  ({ok}/{n} servers "
              f"still ready; requests: {', '.join(kinds) or 'none'})")
    (_, before, _, _), (_, after, _, _) = results.values()
    print(f"  ratio: {before / max(after, 1):.0f}x fewer; ARM's read budget is 12,000 per hour per subscription")


def bench_orphan_to_stopped(rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emu = EmulatorProcess(tmp / "emu", ["--transition", "all=0", "--poll-interval", "0.2"]).start()
        hub = _hub(tmp / "hub", emu, RECONCILE_S)
        took = []
        try:
            hub_id = hub.hub_id
            for i in range(rounds):
                name = f"jhorphan-{chr(97 + i)}bench"
                body = {"tags": Owner(hub_id, f"ghost{i}", "").tags(),
                        "properties": {"computeType": "ComputeInstance", "properties": {"vmSize": "Standard_DS2_v2"}}}
                r = emu.arm("PUT", emu.ws_path() + f"/computes/{name}", json=body)
                assert r.status_code in (200, 201), r.text
                emu.control("POST", "/_emulator/wait")
                t0 = time.monotonic()
                deadline = t0 + 4 * RECONCILE_S
                while time.monotonic() < deadline:
                    state = {x["name"]: x["state"] for x in emu.control("GET", "/_emulator/instances").json()}[name]
                    if state == "Stopped":
                        break
                    time.sleep(0.2)
                took.append(time.monotonic() - t0)
                time.sleep(RECONCILE_S * (i + 1) / (rounds + 1))  # the next orphan appears at another phase
        finally:
            hub.stop()
            emu.reset()
            emu.stop()
    print(f"orphan (a Running instance of this hub with no server) to Stopped, reconcile interval {RECONCILE_S:g} s, "
          f"{rounds} orphans at different phases of the loop:")
    print(f"  median {statistics.median(took):.1f} s ({statistics.median(took) / RECONCILE_S:.2f} intervals), "
          f"max {max(took):.1f} s ({max(took) / RECONCILE_S:.2f} intervals); at {REAL_RECONCILE_S} s that is "
          f"{statistics.median(took) / RECONCILE_S * REAL_RECONCILE_S / 60:.1f} min median, "
          f"{max(took) / RECONCILE_S * REAL_RECONCILE_S / 60:.1f} min at most")
