"""The spawner's Prometheus metrics, at the hub's ``/hub/metrics`` beside JupyterHub's own.

They live in prometheus_client's default registry, the one JupyterHub
serves (with its ``read:metrics`` scope). Counters and histograms are
updated where things happen (a start's phases, a failed start, every HTTP
answer ARM gives, a reconciler's action); what runs and what it costs per
hour is read at scrape time from what the hub already holds (the
reconcilers' last lists, the size list's prices), so a scrape costs no
Azure call and no work on the hub's loop between scrapes.

The names (``aml_`` prefix):

- ``aml_instances{state, vm_size}``: this hub's instances as the reconcilers last listed them;
- ``aml_running_cost_per_hour_usd``: what the Running ones cost per hour (price table, else AML's estimate);
- ``aml_running_unpriced_instances``: Running ones whose size has no price (the cost leaves them out);
- ``aml_spawn_phase_duration_seconds{phase}``: how long each phase of a successful start took;
- ``aml_spawn_failures_total{reason}``: failed starts by reason (options, limit, quota..., timeout);
- ``aml_arm_requests_total{operation, outcome}``: ARM's answers (ok, throttled, client_error, server_error);
- ``aml_reconciler_actions_total{action}``: orphans stopped, deleted, or left running (stop_action keep).
"""

from __future__ import annotations

from urllib.parse import urlparse

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from . import ownership

SPAWN_PHASE_SECONDS = Histogram(
    "aml_spawn_phase_duration_seconds", "Seconds each phase of a successful server start took, by phase",
    ["phase"], buckets=(1, 5, 15, 30, 60, 120, 240, 480, 900, 1800))
SPAWN_FAILURES = Counter("aml_spawn_failures", "Server starts that failed, by reason", ["reason"])
ARM_REQUESTS = Counter("aml_arm_requests", "HTTP answers from ARM (each retry counts), by operation and outcome",
                       ["operation", "outcome"])
RECONCILER_ACTIONS = Counter("aml_reconciler_actions", "What the reconciler did about instances without a server",
                             ["action"])

def arm_operation(method: str, url: str) -> str:
    """An ARM request as a label with a small, fixed set of values: the method
    and the resource type, names and ids left out ("POST computes/start",
    "GET computes", "GET vmSizes", "GET operationStatus")."""
    parts = [p.lower() for p in urlparse(url).path.split("/") if p]
    if "computes" in parts:
        rest = parts[parts.index("computes") + 1:]
        return f"{method} computes" + (f"/{rest[1]}" if len(rest) > 1 else "")
    for kind, label in (("vmsizes", "vmSizes"), ("usages", "usages")):
        if kind in parts:
            return f"{method} {label}"
    if any("operation" in p for p in parts):  # computeOperationsStatus, operationResults: an LRO's poll
        return f"{method} operationStatus"
    if "workspaces" in parts:
        return f"{method} workspaces"
    return f"{method} other"


def arm_outcome(status: int) -> str:
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


def count_arm_response(pipeline_response) -> None:
    """azure-core's ``raw_response_hook``: called for every HTTP answer, retries included."""
    request, response = pipeline_response.http_request, pipeline_response.http_response
    ARM_REQUESTS.labels(arm_operation(request.method, request.url), arm_outcome(response.status_code)).inc()


def observe_phases(durations: list[tuple[str, float]]) -> None:
    for phase, seconds in durations:
        SPAWN_PHASE_SECONDS.labels(phase).observe(seconds)


def fleet_gauges(fleet) -> list:
    """The gauges of what runs, from the fleet's reconcilers' last lists and its priced size lists."""
    instances = GaugeMetricFamily("aml_instances", "This hub's compute instances as the reconcilers last listed "
                                  "them, by state and size", labels=["state", "vm_size"])
    cost = GaugeMetricFamily("aml_running_cost_per_hour_usd",
                             "What this hub's Running instances cost per hour (price table, else AML's estimate)")
    unpriced = GaugeMetricFamily("aml_running_unpriced_instances",
                                 "Running instances of this hub whose size has no price (left out of the cost)")
    prices = fleet.prices()
    counts: dict[tuple[str, str], int] = {}
    total, missing = 0.0, 0
    for reconciler in list(fleet.reconcilers()):
        snap = reconciler.latest
        if snap is None:
            continue
        for info in snap.instances.values():
            owner = ownership.owner_of(info.tags)
            if owner is None or owner.hub != reconciler.hub_id:
                continue
            key = (info.state or "Unknown", info.vm_size or "")
            counts[key] = counts.get(key, 0) + 1
            if info.state == "Running":
                price = prices.get((info.vm_size or "").lower())
                if price is None:
                    missing += 1
                else:
                    total += price
    for (state, size), n in sorted(counts.items()):
        instances.add_metric([state, size], n)
    cost.add_metric([], round(total, 6))
    unpriced.add_metric([], missing)
    return [instances, cost, unpriced]


class FleetCollector:
    def __init__(self, fleet):
        self.fleet = fleet

    def collect(self):
        yield from fleet_gauges(self.fleet)

    def describe(self):
        return []  # no describe: collected at scrape time only


_registered: set[int] = set()


def register(fleet) -> None:
    """Serve the fleet's gauges from the default registry (once per fleet)."""
    if id(fleet) not in _registered:
        REGISTRY.register(FleetCollector(fleet))
        _registered.add(id(fleet))
