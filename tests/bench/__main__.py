"""``make bench``: performance figures, printed (never asserted in tests).

    python -m tests.bench [compute] [spawn] [realtime] [storm] [dataplane] [proxies] [stack] [bootstrap] [reconcile] [--rounds N] [--spawns N] [--users N] [--servers N]

compute: the compute client against the emulator with every transition set to
zero seconds: ARM requests and wall time for create-to-running, stop, start
and delete, and what each request was.
spawn: spawn overhead through a real hub (proxy and redirect mode) and ARM
requests per spawn.
realtime: spawns on Azure ML's real durations (--timing azure, scaled) with no
Retry-After: how late the hub notices Running, the hub's own delay from there
to JupyterLab answering, status reads per spawn.
storm: many users spawning at once; the hub API's latency meanwhile.
dataplane: users' bytes (proxy mode's two layouts, direct mode): download throughput through the proxy and
tunnels vs straight from the server (a ratio, side by side), the hub API's
p99 while 4 users download, and what a hub kill and restart cuts; the tunnel
service (the product's layout) next to tunnels in the hub process.
proxies: what a proxy alone costs here (configurable-http-proxy, Caddy, Traefik): download
throughput straight vs through each, side by side, and whether an open
websocket survives each proxy being given a new route.
stack: image sizes, `docker compose up` to a healthy hub, the hub's memory
with many running servers (images must be built: make image).
bootstrap: the first spawn on a realistic instance with no internet (the hub's install
of JupyterHub, its wheel cache cold and warm), the second start's, and the
hub image's size with the wheels it carries.
reconcile: ARM requests per hour to watch --servers running servers, with the
reconciler off and on, and seconds from an orphan appearing to its Stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.bench.common import kind_of
from tests.harness.emulator import EmulatorProcess


async def bench_compute(rounds: int) -> None:
    from aml_jupyterhub.compute import ComputeClient, InstanceSpec

    with tempfile.TemporaryDirectory() as tmp:
        emu = EmulatorProcess(Path(tmp), ["--transition", "all=0", "--poll-interval", "1"]).start()
        try:
            client = ComputeClient(emu.ml_client(polling_interval=30))  # the SDK default: must never be used
            results: dict[str, list[tuple[float, list[str]]]] = {op: [] for op in ("create", "stop", "start", "delete")}
            for i in range(rounds):
                name = f"ci-bench{chr(97 + i % 26)}{i}"
                for op in results:
                    emu.control("DELETE", "/_emulator/requests")
                    t0 = time.perf_counter()
                    if op == "create":
                        await client.create(InstanceSpec(name, "Standard_DS1_v2"))
                    else:
                        await getattr(client, op)(name)
                    wall = time.perf_counter() - t0
                    results[op].append((wall, [kind_of(e) for e in emu.requests_seen()]))
        finally:
            emu.reset()
            emu.stop()
    print(f"compute client vs emulator, transitions 0 s, Retry-After 1 s, {rounds} rounds")
    print(f"{'operation':<10} {'requests':>8} {'wall median':>12} {'wall max':>9}  sequence")
    for op, runs in results.items():
        walls = [w for w, _ in runs]
        counts = Counter(len(seq) for _, seq in runs)
        seq = runs[0][1]
        print(f"{op:<10} {max(counts):>8} {statistics.median(walls):>11.2f}s {max(walls):>8.2f}s  {' '.join(seq)}")
    worst = max(w for runs in results.values() for w, _ in runs)
    print(f"slowest operation: {worst:.2f} s (a poll waiting for the SDK's 30 s default would show here)")


SUITES = ["compute", "spawn", "realtime", "storm", "dataplane", "proxies", "stack", "bootstrap", "reconcile"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench")
    p.add_argument("suites", nargs="*", default=SUITES, help=f"any of {', '.join(SUITES)} (default: all)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the compute suite")
    p.add_argument("--spawns", type=int, default=20, help="spawns per mode in the spawn suite")
    p.add_argument("--users", type=int, default=50, help="users in the storm suite")
    p.add_argument("--servers", type=int, default=100, help="running servers in the reconcile suite")
    args = p.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        p.error(f"unknown suite(s): {', '.join(sorted(unknown))}; choose from {', '.join(SUITES)}")
    from tests.bench import hub

    for suite in args.suites:
        print(f"== {suite}", flush=True)
        if suite == "compute":
            asyncio.run(bench_compute(args.rounds))
        elif suite == "spawn":
            hub.bench_overhead(args.spawns)
        elif suite == "realtime":
            hub.bench_real_timing()
        elif suite == "storm":
            hub.bench_storm(args.users)
        elif suite == "dataplane":
            from tests.bench import dataplane

            dataplane.bench_dataplane()
        elif suite == "proxies":
            from tests.bench import proxies

            proxies.bench_proxies()
        elif suite == "stack":
            from tests.bench import stack

            stack.bench_images()
            stack.bench_compose_up()
            stack.bench_hub_memory(args.users)
        elif suite == "bootstrap":
            from tests.bench import bootstrap

            bootstrap.bench_bootstrap()
        elif suite == "reconcile":
            from tests.bench import reconcile

            reconcile.bench_arm_reads(args.servers)
            reconcile.bench_orphan_to_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(main())
