"""Small helpers shared by the benchmarks."""

from __future__ import annotations


def kind_of(entry: dict) -> str:
    """A short name for one ARM request from the emulator's request log."""
    path = entry["path"]
    if "computeOperationsStatus" in path:
        return "poll"
    tail = path.rstrip("/").split("/")
    if tail[-2] == "workspaces":
        return "workspace"
    if tail[-1] in ("vmSizes", "usages"):
        return tail[-1]
    if tail[-1] in ("start", "stop", "restart"):
        return tail[-1]
    if tail[-1] == "computes":
        return "list"
    return {"PUT": "put", "DELETE": "delete", "GET": "get"}.get(entry["method"], entry["method"].lower())


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]
