"""The ``/_emulator/`` control API: knobs for tests, the demo and benchmarks.

Not part of Azure. Every answer is JSON; bad input gets 400 with a message.
Only the emulator's own host, or a client holding its secret, may use it (see
:func:`control_guard`); health is open to anyone.

    GET    /_emulator/health
    POST   /_emulator/reset                   remove every instance, fault and quota override; roles as at start
    GET    /_emulator/transitions             seconds each transition takes
    PUT    /_emulator/transitions             {"start": 0.5, ...} or {"all": 0}
    GET    /_emulator/faults                  pending faults
    POST   /_emulator/faults                  add one (see faults.py)
    DELETE /_emulator/faults
    PUT    /_emulator/quota                   {"location": "westeurope", "family": "standardDSv2Family"|"total", "limit": 0}
    GET    /_emulator/requests                ARM requests seen (method, path, status, time)
    DELETE /_emulator/requests
    GET    /_emulator/instances               every instance with its runtime bookkeeping
    POST   /_emulator/instances/{name}/force  {"action": "stop"|"idle_shutdown"|"delete"|"unusable"}
    POST   /_emulator/wait                    returns once no transition is running
    GET    /_emulator/roles                   role assignments and custom roles in force (see roles.py)
    PUT    /_emulator/roles                   {"assignments": [{"principal", "role", "scope"}], "definitions": [...]}
    GET    /_emulator/clock                   the emulator's now (idle shutdown and schedules run on it)
    POST   /_emulator/clock                   {"advance_seconds": N}: move it forward, running what falls due
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import json
from dataclasses import asdict

from aiohttp import web

from .errors import ArmError
from .faults import Fault
from .models import TRANSITION_KINDS, Backend


CONTROL_PREFIX = "/_emulator"
CONTROL_SECRET_HEADER = "X-Emulator-Secret"
# Open to anyone: container and compose health checks, and README's curl that
# shows a browser trusts the emulator's CA. It tells the runtime kind, how many
# instances there are and the workspaces served: nothing to act on. Nothing else under
# /_emulator/ is for a browser (the emulated Azure AD's pages live under
# /<tenant>/), and everything else changes or reveals the emulator's state
# (instances, faults, roles, the clock, app registrations and test users).
OPEN_CONTROL_PATHS = frozenset({"/_emulator/health"})


def from_loopback(request: web.Request) -> bool:
    """The peer is on a loopback address: a client on the emulator's own host
    (or, in its container, the container itself, as its health check)."""
    try:
        address = ipaddress.ip_address((request.remote or "").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def control_guard(secret: str, secret_file: str):
    """Middleware: ``/_emulator/...`` needs the control secret in
    ``X-Emulator-Secret`` unless the request comes from the loopback address.

    Compute instances sit on the emulator's network (local mode's containers),
    and a real instance reaches nothing of Azure's without a credential;
    ``secret_file`` is named in the refusal so the operator knows where to
    read it."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        # request.path is decoded: an encoded "/%5Femulator/..." is guarded too
        if not request.path.startswith(CONTROL_PREFIX) or request.path in OPEN_CONTROL_PATHS:
            return await handler(request)
        given = request.headers.get(CONTROL_SECRET_HEADER, "")
        if from_loopback(request) or (given and hmac.compare_digest(given.encode(), secret.encode())):
            return await handler(request)
        return web.json_response(
            {"error": f"The emulator's control API needs its secret: send the {CONTROL_SECRET_HEADER} header "
                      f"with the content of {secret_file} on the emulator's machine (under compose: docker "
                      f"compose exec emulator cat {secret_file}), or call it from the emulator's own host."},
            status=401,
        )

    return middleware


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json_body(request: web.Request):
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json.dumps({"error": "body must be JSON"}), content_type="application/json")


class ControlApi:
    def __init__(self, backend: Backend, request_log, automation=None, on_reset=None):
        self.backend = backend
        self.request_log = request_log
        self.automation = automation
        self.on_reset = on_reset  # what else a reset restores (the role assignments)

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/_emulator/health", self.health)
        r.add_post("/_emulator/reset", self.reset)
        r.add_get("/_emulator/transitions", self.get_transitions)
        r.add_put("/_emulator/transitions", self.put_transitions)
        r.add_get("/_emulator/faults", self.get_faults)
        r.add_post("/_emulator/faults", self.add_fault)
        r.add_delete("/_emulator/faults", self.clear_faults)
        r.add_put("/_emulator/quota", self.put_quota)
        r.add_get("/_emulator/requests", self.get_requests)
        r.add_delete("/_emulator/requests", self.clear_requests)
        r.add_get("/_emulator/instances", self.get_instances)
        r.add_post("/_emulator/instances/{name}/force", self.force)
        r.add_post("/_emulator/wait", self.wait)
        r.add_get("/_emulator/clock", self.get_clock)
        r.add_post("/_emulator/clock", self.advance_clock)

    async def health(self, request):
        return web.json_response(
            {
                "status": "ok",
                "runtime": self.backend.runtime.kind,
                "instances": len(self.backend.instances),
                "workspaces": [asdict(w) for w in self.backend.workspaces.values()],
            }
        )

    async def reset(self, request):
        await self.backend.reset()
        self.request_log.entries.clear()
        if self.on_reset is not None:
            self.on_reset()
        return web.json_response({"status": "reset"})

    async def get_transitions(self, request):
        return web.json_response(self.backend.transitions)

    async def put_transitions(self, request):
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _bad("expected an object of transition -> seconds")
        updates = {}
        for kind, value in body.items():
            if kind not in TRANSITION_KINDS and kind != "all":
                return _bad(f"unknown transition {kind!r}; expected one of {', '.join(TRANSITION_KINDS)} or all")
            if not isinstance(value, (int, float)) or value < 0:
                return _bad(f"seconds for {kind!r} must be a number >= 0")
            for k in TRANSITION_KINDS if kind == "all" else [kind]:
                updates[k] = float(value)
        self.backend.transitions.update(updates)
        return web.json_response(self.backend.transitions)

    async def get_faults(self, request):
        return web.json_response(self.backend.faults.pending())

    async def add_fault(self, request):
        body = await _json_body(request)
        try:
            fault = Fault.from_json(body)
        except (TypeError, ValueError) as e:
            return _bad(str(e))
        self.backend.faults.add(fault)
        return web.json_response(self.backend.faults.pending(), status=201)

    async def clear_faults(self, request):
        self.backend.faults.clear()
        return web.json_response([])

    async def put_quota(self, request):
        body = await _json_body(request)
        if not isinstance(body, dict) or "limit" not in body:
            return _bad('expected {"location": ..., "family": ... or "total", "limit": n}')
        location = body.get("location") or next(iter(self.backend.workspaces.values())).location
        try:
            self.backend.set_quota(location, body.get("family"), int(body["limit"]))
        except (TypeError, ValueError) as e:
            return _bad(str(e))
        return web.json_response(self.backend.quota_overrides)

    async def get_requests(self, request):
        return web.json_response(self.request_log.entries)

    async def clear_requests(self, request):
        self.request_log.entries.clear()
        return web.json_response([])

    async def get_instances(self, request):
        return web.json_response([asdict(i) for i in self.backend.instances.values()])

    async def force(self, request):
        body = await _json_body(request)
        try:
            inst = await self.backend.force(request.match_info["name"], (body or {}).get("action", ""))
        except KeyError:
            return web.json_response({"error": "no such instance"}, status=404)
        except ValueError as e:
            return _bad(str(e))
        except ArmError as e:
            return web.json_response({"error": e.message}, status=e.status)
        return web.json_response({"name": inst.name, "state": inst.state})

    async def wait(self, request):
        await self.backend.wait_idle()
        return web.json_response({"status": "idle"})

    def _clock_body(self) -> dict:
        clock = self.backend.clock
        now = clock.now()
        return {"now": dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(), "epoch": now,
                "offset_seconds": clock.offset}

    async def get_clock(self, request):
        return web.json_response(self._clock_body())

    async def advance_clock(self, request):
        body = await _json_body(request)
        seconds = body.get("advance_seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            return _bad('expected {"advance_seconds": N} with N >= 0 (the clock only moves forward)')
        if self.automation is None:
            return _bad("this emulator runs no idle shutdown or schedules")
        done = await self.automation.advance(float(seconds))
        return web.json_response({**self._clock_body(), "done": done})
