"""Injected faults: what a test asks the emulator to get wrong next.

Kinds:
- ``throttle``: the next ``count`` matching ARM calls answer 429 with
  ``Retry-After`` (seconds), as ARM does when a subscription is throttled.
- ``error``: the next ``count`` matching calls answer ``status`` (500 by
  default) with an ARM error body and no ``Retry-After``.
- ``create_failed``: the next ``count`` creations end in CreateFailed with
  ``code``/``message`` (AML's own error text).
- ``start_failed``: the next ``count`` starts fail (the instance stays
  Stopped, ``lastOperation`` says StartFailed).

``methods`` (e.g. ``["POST"]``) and ``path_contains`` narrow which requests a
throttle/error fault hits.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

from .errors import ArmError

KINDS = ("throttle", "error", "create_failed", "start_failed")


@dataclass
class Fault:
    kind: str
    count: int = 1
    retry_after: float = 1
    status: int = 500
    code: str | None = None
    message: str | None = None
    methods: list[str] = field(default_factory=list)
    path_contains: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> "Fault":
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**data)
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; expected one of {', '.join(KINDS)}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.kind == "error" and not 400 <= fault.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        fault.methods = [m.upper() for m in fault.methods]
        return fault

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        return not self.path_contains or self.path_contains in path


class FaultPlan:
    def __init__(self):
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def _take(self, kinds, method="", path="") -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and (fault.kind not in ("throttle", "error") or fault.matches(method, path)):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def http_fault(self, method: str, path: str) -> ArmError | None:
        fault = self._take(("throttle", "error"), method, path)
        if fault is None:
            return None
        if fault.kind == "throttle":
            return ArmError(
                429,
                fault.code or "TooManyRequests",
                fault.message or "The request is being throttled. Retry after the time given in Retry-After.",
                retry_after=fault.retry_after,
            )
        return ArmError(
            fault.status,
            fault.code or "InternalServerError",
            fault.message or "Encountered internal server error. Please try again.",
        )

    def create_failure(self) -> Fault | None:
        return self._take(("create_failed",))

    def start_failure(self) -> Fault | None:
        return self._take(("start_failed",))
