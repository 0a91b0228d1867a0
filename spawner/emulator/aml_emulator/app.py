"""The emulator as one aiohttp application: ARM, Azure AD, application
endpoints and the control API, over one HTTPS port.

``create_app(config)`` is what both ``python -m aml_emulator`` and
gunicorn (``aml_emulator.app:gunicorn_app``, one worker: the state
lives in the process) serve.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from .automation import Automation
from .arm import ArmApi, RequestLog, error_response, request_ids_middleware
from .config import DEFAULT_ARM_TOKEN, EmulatorConfig, load_config
from .control import ControlApi, control_guard
from .errors import ArmError
from .faults import Fault
from .models import Backend
from .roles import STATIC_TOKEN_OID, Roles, RolesApi
from .recorder import ResponseRecorder, recording_middleware
from .retail import RetailPricesApi
from .secretfiles import ensure_secret
from .store import JsonStore

log = logging.getLogger("aml_emulator")

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Token audiences ARM accepts (the SDK asks for https://management.azure.com/.default).
ARM_AUDIENCES = ("https://management.azure.com/", "https://management.azure.com", "https://management.core.windows.net/")


def make_runtime(config: EmulatorConfig):
    if config.runtime == "docker":
        from .runtime.docker import DockerRuntime

        return DockerRuntime(config.state_dir, image=config.docker_image, network=config.docker_network,
                             slots=config.docker_slots, internet=config.docker_internet)
    from .runtime.process import ProcessRuntime

    return ProcessRuntime(config.state_dir)


def arm_middleware(backend: Backend, request_log: RequestLog, tokens: list[str], aad, roles=None):
    """Log, fault-inject, authenticate and authorize (``roles``: Azure RBAC)
    ARM requests (paths under /subscriptions/)."""

    def caller_for(token: str):
        """(createdBy of the caller, its RBAC principal), or None for a token ARM would refuse.

        createdBy is what AML records of the caller's token: its tenant
        (``userOrgId``, the ``tid`` claim) and object id (``userId``, the
        ``oid`` claim), no user name. A static token stands for the emulated
        hub identity: this tenant, and the stable object id ARM's refusals
        name for it (``roles.STATIC_TOKEN_OID``)."""
        if token in tokens:
            caller = {"userOrgId": aad.config.tenant_id if aad else None, "userId": STATIC_TOKEN_OID}
            return caller, roles.principal_static() if roles else None
        if aad is None:
            return None
        for audience in ARM_AUDIENCES:
            try:
                claims = aad.verify_token(token, audience)
            except Exception:
                continue
            caller = {"userOrgId": claims.get("tid"), "userId": claims.get("oid")}
            return caller, roles.principal_from_claims(claims) if roles else None
        return None

    @web.middleware
    async def middleware(request: web.Request, handler):
        if not request.path.startswith("/subscriptions/"):
            return await handler(request)
        request["t0"] = time.monotonic()
        started = time.time()
        response = await _arm(request, handler)
        request_log.add(request, response.status, started)
        return response

    async def _arm(request, handler):
        auth = request.headers.get("Authorization", "")
        if not auth:
            return error_response(
                ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
            )
        scheme, _, token = auth.partition(" ")
        found = caller_for(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            return error_response(
                ArmError(
                    401,
                    "InvalidAuthenticationToken",
                    "The access token is invalid. Use the emulator's token (its --arm-token, or the one in its "
                    "--arm-token-file) or one it issued.",
                )
            )
        caller, principal = found
        refusal = roles.check(request.method, request.path, principal) if roles else None
        if refusal is not None:
            return error_response(refusal)
        fault = backend.faults.http_fault(request.method, request.path)
        if fault is not None:
            return error_response(fault)
        request["caller"] = caller
        request["principal"] = principal
        return await handler(request)

    return middleware


def ensure_secrets(config: EmulatorConfig) -> tuple[list[str], str]:
    """The ARM tokens to accept and the control API's secret, each secret file
    made on first start (SecretFileError says why one cannot be)."""
    arm_tokens = list(config.arm_tokens)
    if config.arm_token_file:
        arm_tokens.append(ensure_secret(config.arm_token_file, "--arm-token-file", config.arm_token_file_owner))
    return arm_tokens, ensure_secret(config.control_secret_path, "--control-secret-file")


def create_app(config: EmulatorConfig) -> web.Application:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    runtime = make_runtime(config)
    backend = Backend(
        config.workspaces,
        runtime,
        JsonStore(config.state_dir / "state.json"),
        transitions=config.transitions,
        page_size=config.page_size,
    )
    for raw in config.faults:
        backend.faults.add(Fault.from_json(raw))
    request_log = RequestLog()

    from .aad import AzureAD, IdentityConfig
    from .appproxy import ApplicationProxy, Upstream

    identity = IdentityConfig.load(config.identity_file)
    if config.redirect_uris and identity.apps:
        hub_app = identity.apps[0]
        hub_app.redirect_uris = [*hub_app.redirect_uris, *(u for u in config.redirect_uris
                                                           if u not in hub_app.redirect_uris)]
    aad = AzureAD(identity, config.state_dir / "aad")
    roles = Roles(config.workspaces, config.roles, hub_client_id=identity.apps[0].client_id if identity.apps else None)

    arm_tokens, control_secret = ensure_secrets(config)
    if DEFAULT_ARM_TOKEN in arm_tokens and config.host not in LOOPBACK_HOSTS:
        log.warning("ARM accepts the public test token %s on %s: anything that reaches this address (compute "
                    "instances too) may act as the hub; give --arm-token-file instead", DEFAULT_ARM_TOKEN, config.host)
    middlewares = [request_ids_middleware(), control_guard(control_secret, str(config.control_secret_path)),
                   arm_middleware(backend, request_log, arm_tokens, aad, roles)]
    if config.record_responses:
        middlewares.insert(0, recording_middleware(ResponseRecorder(config.record_responses)))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=8 * 1024 * 1024,
    )
    app["config"] = config
    app["backend"] = backend
    app["aad"] = aad
    app["request_log"] = request_log
    app["roles"] = roles
    RolesApi(roles).add_routes(app)  # first: its ARM permissions routes come before ArmApi's catch-all
    ArmApi(backend, poll_interval=config.poll_interval, public_url=config.public_url).add_routes(app)
    automation = Automation(backend)
    app["automation"] = automation
    ControlApi(backend, request_log, automation, on_reset=roles.reset).add_routes(app)
    RetailPricesApi(config.public_url or "").add_routes(app)
    aad.add_routes(app)

    async def resolve(name: str) -> Upstream:
        try:
            inst, lab = await backend.application_lab(name)
        except KeyError:
            raise web.HTTPNotFound(text=f"No compute instance named '{name}'.") from None
        except LookupError as e:
            raise web.HTTPConflict(text=str(e)) from None
        return Upstream(lab.origin, inst.owner_oid(), lab.token)

    ApplicationProxy(aad, resolve).add_routes(app)

    async def on_startup(app):
        await runtime.start()
        await backend.load()
        automation.start()
        swept = await runtime.sweep({inst.name for inst in backend.instances.values()})
        if swept:
            log.warning("removed %d emulated instance(s) no instance of this emulator's state knows (their state "
                        "was deleted, e.g. by docker compose down -v): %s", len(swept), ", ".join(swept))
        log.info(
            "emulator ready: runtime=%s workspaces=%s transitions=%s",
            runtime.kind,
            ", ".join(f"{w.subscription_id}/{w.resource_group}/{w.name} ({w.location})" for w in config.workspaces),
            backend.transitions,
        )

    async def on_cleanup(app):
        # Machines outlive the emulator (as VMs outlive ARM); only stop our tasks.
        await automation.close()
        backend.cancel_transitions()
        await runtime.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def gunicorn_app() -> web.Application:
    """Factory for gunicorn: settings come from ``AML_EMULATOR_ARGS``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(load_config())
