"""ARM REST routing for the emulated AML control plane (moto's "responses").

It parses requests, calls the backend (``models``) and answers with the bodies
``render`` makes; the state and AML's rules live elsewhere.

Paths are matched case-insensitively, as ARM does. An api-version the
provider does not publish is refused as ARM refuses it (400
NoRegisteredProviderFound); azure-ai-ml 1.35 sends 2023-08-01-preview (and
2024-04-01-preview for enableSso). Long operations answer
201/202 with an absolute ``Azure-AsyncOperation`` URL and a retry interval, so
the SDK's poller never falls back to its 30 s default.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from urllib.parse import urlencode

from aiohttp import web

from . import catalog, render
from .errors import ArmError, bad_request, not_found
from .models import PROVIDER, Backend, Instance, Operation

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_WS = _SUB + r"/resourceGroups/(?P<rg>[^/]+)/providers/" + PROVIDER + r"/workspaces/(?P<ws>[^/]+)"
_LOC = _SUB + r"/providers/" + PROVIDER + r"/locations/(?P<loc>[^/]+)"

ROUTES = [
    ("workspace", re.compile(_WS + r"/?$", re.I)),
    ("computes", re.compile(_WS + r"/computes/?$", re.I)),
    ("compute", re.compile(_WS + r"/computes/(?P<name>[^/]+)/?$", re.I)),
    ("compute_action", re.compile(_WS + r"/computes/(?P<name>[^/]+)/(?P<action>[A-Za-z]+)/?$", re.I)),
    ("vm_sizes", re.compile(_LOC + r"/vmSizes/?$", re.I)),
    ("usages", re.compile(_LOC + r"/usages/?$", re.I)),
    ("operation", re.compile(_LOC + r"/computeOperationsStatus/(?P<op>[^/]+)/?$", re.I)),
]

ACTIONS = {"start", "stop", "restart", "resize", "listnodes", "listkeys", "enablesso", "updateidleshutdownsetting"}

# The published Microsoft.MachineLearningServices versions the reference
# names (shared/reference/aml-compute-contract.md): 2023-08-01-preview is what
# azure-ai-ml 1.35 sends for computes, sizes, usages and workspaces (and the
# hub's own resize call, through the SDK's client), 2024-04-01-preview its
# enableSso, 2024-10-01-preview its workspace operations (``ml.workspaces.get``,
# which the hub uses to learn the region; published in azure-rest-api-specs);
# 2021-07-01 the oldest with updateIdleShutdownSetting; 2024-04-01, 2025-09-01
# and 2025-12-01 stable ones.
SUPPORTED_API_VERSIONS = ("2021-07-01", "2023-08-01-preview", "2024-04-01", "2024-04-01-preview",
                          "2024-10-01-preview", "2025-09-01", "2025-12-01")


def resource_type(path: str, action: bool = False) -> str:
    """The provider's resource type a path names, as ARM spells it in errors:
    ``workspaces``, ``workspaces/computes``, ``locations/vmSizes``... (every
    other segment after the provider; an action, e.g. ``/start``, is none)."""
    tail = re.split(PROVIDER + "/", path, maxsplit=1, flags=re.I)[-1].strip("/").split("/")
    if action:
        tail = tail[:-1]
    return "/".join(tail[0::2])


def arm_json(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=headers or {},
    )


def error_response(err: ArmError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(int(err.retry_after)) if err.retry_after >= 1 else "0"
        if err.retry_after < 1:
            headers["retry-after-ms"] = str(int(err.retry_after * 1000))
    return arm_json(err.body(), err.status, headers)


class ArmApi:
    def __init__(self, backend: Backend, poll_interval: float | None = None, public_url: str | None = None):
        self.backend = backend
        self.poll_interval = poll_interval
        self.public_url = public_url.rstrip("/") if public_url else None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/subscriptions/{tail:.*}", self.dispatch)

    # ---- helpers -----------------------------------------------------

    @staticmethod
    def base_url(request: web.Request) -> str:
        return f"https://{request.host}"

    def app_base(self, request: web.Request) -> str:
        return self.public_url or self.base_url(request)

    def retry_headers(self) -> dict:
        """Retry-After on a long operation: none unless configured (Azure ML sends none)."""
        if self.poll_interval is None:
            return {}
        if self.poll_interval >= 1:
            return {"Retry-After": str(int(self.poll_interval))}
        return {"retry-after-ms": str(max(1, int(self.poll_interval * 1000)))}

    def op_url(self, request: web.Request, op: Operation) -> str:
        return (
            f"{self.base_url(request)}/subscriptions/{op.subscription_id}/providers/{PROVIDER}"
            f"/locations/{op.location}/computeOperationsStatus/{op.id}?"
            + urlencode({"api-version": request.query.get("api-version", "2023-08-01-preview")})
        )

    def render_instance(self, request: web.Request, inst: Instance, just_created: bool = False) -> dict:
        return render.compute_instance(inst, self.backend.workspaces.get(inst.workspace), self.app_base(request),
                                       just_created)

    def accepted(self, request: web.Request, op: Operation, status: int = 202, body=None) -> web.Response:
        headers = {"Azure-AsyncOperation": self.op_url(request, op), **self.retry_headers()}
        if body is None:
            return web.Response(status=status, headers=headers)
        return arm_json(body, status, headers)

    # ---- dispatch ----------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.Response:
        try:
            if "api-version" not in request.query:
                raise ArmError(
                    400, "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            for name, pattern in ROUTES:
                m = pattern.match(request.path)
                if m:
                    self._check_api_version(request, m.groupdict(), action=name == "compute_action")
                    handler = getattr(self, f"on_{name}")
                    return await handler(request, **m.groupdict())
            raise ArmError(404, "InvalidResourceType", f"The resource type could not be found for '{request.path}'.")
        except ArmError as err:
            return error_response(err)

    def _check_api_version(self, request: web.Request, parts: dict, action: bool) -> None:
        version = request.query["api-version"]
        if version.lower() in SUPPORTED_API_VERSIONS:
            return
        location = parts.get("loc")
        if location is None:
            ws = self.backend.workspaces.get((parts["sub"].lower(), parts["rg"].lower(), parts["ws"].lower()))
            location = ws.location if ws else "global"
        locations = sorted({w.location for w in self.backend.workspaces.values()})
        raise ArmError(
            400, "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{location}' and API version '{version}' for type "
            f"'{resource_type(request.path, action)}'. The supported api-versions are '{', '.join(SUPPORTED_API_VERSIONS)}'. "
            f"The supported locations are '{', '.join(locations)}'.",
        )

    def _method(self, request: web.Request, allowed: tuple) -> None:
        if request.method not in allowed:
            raise ArmError(405, "MethodNotAllowed", f"The method {request.method} is not allowed on {request.path}.")

    async def on_workspace(self, request, sub, rg, ws):
        self._method(request, ("GET",))
        return arm_json(render.workspace(self.backend.workspace(sub, rg, ws)))

    async def on_computes(self, request, sub, rg, ws):
        self._method(request, ("GET",))
        workspace = self.backend.workspace(sub, rg, ws)
        try:
            skip = int(request.query.get("$skip", "0") or 0)
        except ValueError:
            raise bad_request("$skip must be a number.", code="BadRequest") from None
        items = self.backend.list_instances(workspace)
        page = items[skip : skip + self.backend.page_size]
        body = {"value": [self.render_instance(request, i) for i in page]}
        if skip + self.backend.page_size < len(items):
            query = dict(request.query)
            query["$skip"] = str(skip + self.backend.page_size)
            body["nextLink"] = f"{self.base_url(request)}{request.path}?{urlencode(query)}"
        else:
            body["nextLink"] = None
        return arm_json(body)

    async def on_compute(self, request, sub, rg, ws, name):
        self._method(request, ("GET", "PUT", "DELETE"))
        workspace = self.backend.workspace(sub, rg, ws)
        if request.method == "GET":
            inst = self.backend.instance(workspace, name)
            return arm_json(self.render_instance(request, inst))
        if request.method == "PUT":
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise bad_request("The request body is not valid JSON.", code="BadRequest") from None
            inst, op, created = await self.backend.create_or_update(workspace, name, body, request["caller"])
            if created:
                return self.accepted(request, op, 201, self.render_instance(request, inst, just_created=True))
            return arm_json(self.render_instance(request, inst), 200)
        op = await self.backend.delete(workspace, name, request.query.get("underlyingResourceAction", "Delete"))
        if op is None:
            return web.Response(status=204)
        return self.accepted(request, op)

    async def on_compute_action(self, request, sub, rg, ws, name, action):
        action = action.lower()
        if action not in ACTIONS:
            raise ArmError(404, "InvalidResourceType", f"Unknown compute action '{action}'.")
        self._method(request, ("POST",))
        workspace = self.backend.workspace(sub, rg, ws)
        if action in ("start", "stop", "restart"):
            op = await self.backend.action(workspace, name, action)
            return self.accepted(request, op)
        if action == "resize":  # not wrapped by azure-ai-ml: {"targetVMSize": ...}
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            target = body.get("targetVMSize") if isinstance(body, dict) else None
            return self.accepted(request, await self.backend.resize(workspace, name, target))
        if action == "updateidleshutdownsetting":  # not wrapped by azure-ai-ml: {"idleTimeBeforeShutdown": "PT30M"}
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                raise bad_request('The request body must be {"idleTimeBeforeShutdown": "PT<minutes>M"}.',
                                  code="BadRequest")
            self.backend.update_idle_shutdown(workspace, name, body.get("idleTimeBeforeShutdown"))
            return web.Response(status=200)  # the service answers 200 with no body
        inst = self.backend.instance(workspace, name)
        if action == "listnodes":
            return arm_json(render.nodes(inst))
        if action == "listkeys":
            return arm_json({"computeType": "ComputeInstance"})
        # enableSso; a body that is not JSON means "on"
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        caller_oid = (request["caller"] or {}).get("userId")
        self.backend.set_sso(inst, bool(body.get("enableSSO", True)), caller_oid)
        return arm_json({}, 200)

    async def on_vm_sizes(self, request, sub, loc):
        self._method(request, ("GET",))
        return arm_json({"value": [render.vm_size(s) for s in catalog.sizes_for(loc)]})

    async def on_usages(self, request, sub, loc):
        self._method(request, ("GET",))
        usages = render.usages(sub, loc, self.backend.limits(loc), self.backend.usage(loc))
        return arm_json({"value": usages, "nextLink": None})

    async def on_operation(self, request, sub, loc, op):
        self._method(request, ("GET",))
        try:
            operation = self.backend.operation(op)
        except ArmError:
            raise not_found("locations/computeOperationsStatus", op) from None
        headers = self.retry_headers() if operation.status == "InProgress" else {}
        return arm_json(render.operation(operation), 200, headers)


def _guid_or_none(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def request_ids_middleware():
    """ARM's request ids on every response: its own ``x-ms-request-id``, and
    ``x-ms-correlation-request-id``, the client's when it sent a GUID (ARM
    carries it through), otherwise a new one."""

    @web.middleware
    async def middleware(request, handler):
        response = await handler(request)
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        response.headers.setdefault(
            "x-ms-correlation-request-id",
            _guid_or_none(request.headers.get("x-ms-correlation-request-id")) or str(uuid.uuid4()),
        )
        client_id = request.headers.get("x-ms-client-request-id")
        if client_id:
            response.headers.setdefault("x-ms-client-request-id", client_id)
        return response

    return middleware


class RequestLog:
    """What ARM requests arrived, for tests and ``make bench`` to count."""

    def __init__(self, limit: int = 20000):
        self.entries: list[dict] = []
        self.limit = limit

    def add(self, request: web.Request, status: int, started: float) -> None:
        self.entries.append(
            {
                "time": started,
                "duration_ms": round((time.monotonic() - request["t0"]) * 1000, 2),
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "status": status,
            }
        )
        del self.entries[: -self.limit]
