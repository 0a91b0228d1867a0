"""``make bench``: performance figures, printed (never asserted in tests).

    python -m tests.bench [compute] [--rounds N]

compute: the compute client against the emulator with every transition set to
zero seconds: ARM requests and wall time for create-to-running, stop, start
and delete, and what each request was.
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

from tests.conftest import EmulatorProcess


def _kind(entry: dict) -> str:
    path = entry["path"]
    if "computeOperationsStatus" in path:
        return "poll"
    tail = path.rstrip("/").split("/")
    if tail[-2] == "workspaces":
        return "workspace"
    if tail[-1] in ("start", "stop", "restart"):
        return tail[-1]
    return {"PUT": "put", "DELETE": "delete", "GET": "get"}.get(entry["method"], entry["method"].lower())


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
                    results[op].append((wall, [_kind(e) for e in emu.requests_seen()]))
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench")
    p.add_argument("suites", nargs="*", default=["compute"], help="compute")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    for suite in args.suites:
        if suite == "compute":
            asyncio.run(bench_compute(args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
