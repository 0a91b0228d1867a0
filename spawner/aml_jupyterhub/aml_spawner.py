"""AMLSpawner: each user's (and each named server's) notebook server on their
own Azure Machine Learning compute instance.

    c.JupyterHub.spawner_class = "aml"

The flow is one way: options -> profile -> instance spec -> AML calls ->
running instance -> connection -> URL. This class orchestrates; the work is
in ``profiles``, ``naming``, ``compute``, ``ssh``/``remote`` and
``redirector``.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

import jupyterhub
from jupyterhub.spawner import SpawnException, Spawner
from traitlets import Any, Bool, Dict, Float, Integer, List, TraitError, Unicode, default, validate

from . import naming, remote
from .compute import (
    ComputeClient,
    ComputeError,
    InstanceFailed,
    InstanceSpec,
    NotFound,
    StaticTokenCredential,
    make_ml_client,
    shared_executor,
)
from .compute.sdk import AZURE_ARM_ENDPOINT, is_azure_endpoint
from .profiles import DEFAULT_PROFILES, OptionsError, Project, choose, menu_for, parse_profiles, parse_projects, render_form
from .progress import ProgressLog, fmt_elapsed
from .redirector import shared_redirector
from .ssh import Connection, SSHError, SSHTarget, ensure_keypair, public_key_text

STATE_VERSION = 1
EMULATOR_TOKEN = "aml-emulator-local-token"

# Shared by every spawner in the hub process.
_instance_locks: dict[str, asyncio.Lock] = {}
_clients: dict[tuple, ComputeClient] = {}
_sizes_cache: dict[tuple, tuple[float, dict]] = {}


def spawn_error(message: str, *, reason: str, status_code: int = 400) -> SpawnException:
    """A SpawnException whose message the user sees as is (in the progress
    stream and the REST answer), without JupyterHub's exception prefix."""
    err = SpawnException(message, reason=reason, status_code=status_code)
    err.jupyterhub_message = message
    return err


_clients_lock_obj: asyncio.Lock | None = None


def _clients_lock() -> asyncio.Lock:
    global _clients_lock_obj
    if _clients_lock_obj is None:
        _clients_lock_obj = asyncio.Lock()
    return _clients_lock_obj


def _lock_for(name: str) -> asyncio.Lock:
    lock = _instance_locks.get(name)
    if lock is None:
        lock = _instance_locks[name] = asyncio.Lock()
    return lock


class AMLSpawner(Spawner):
    """Spawn notebook servers on Azure Machine Learning compute instances."""

    # ---- workspace and credentials ------------------------------------

    subscription_id = Unicode("", config=True, help="Azure subscription id of the default workspace.")
    resource_group = Unicode("", config=True, help="Resource group of the default workspace.")
    workspace_name = Unicode("", config=True, help="Name of the default Azure ML workspace.")
    projects = List(
        Dict(),
        config=True,
        help="""Workspaces a user may pick from ("Select a project"). Each: slug, display_name,
        subscription_id, resource_group, workspace_name, and optional groups (JupyterHub group names
        allowed; empty: everyone). Empty (default): only the default workspace. With one choice
        available to a user, the form asks nothing.""",
    )
    arm_endpoint = Unicode(
        AZURE_ARM_ENDPOINT,
        config=True,
        help="Azure Resource Manager base URL. Azure's by default; the emulator's base URL in local mode.",
    )
    ca_bundle = Unicode("", config=True, help="CA file to trust for ARM calls (the emulator's ca.pem). Default: system CAs.")
    credential = Any(
        None,
        allow_none=True,
        config=True,
        help="""An azure-identity TokenCredential for ARM. Default: DefaultAzureCredential
        (environment service principal, workload or managed identity, az login) against Azure, and
        the emulator's static test token when arm_endpoint is not Azure's.""",
    )
    emulator_token = Unicode(EMULATOR_TOKEN, config=True, help="Static bearer token sent to a non-Azure arm_endpoint.")
    compute_client_factory = Any(
        None,
        allow_none=True,
        config=True,
        help="Callable(spawner, project) -> ComputeClient, to replace how clients are built (tests, custom auth).",
    )

    # ---- sizes ----------------------------------------------------------

    profiles = List(
        Dict(),
        default_value=DEFAULT_PROFILES,
        config=True,
        help="""The VM-size menu. Each: slug, display_name, vm_size (e.g. Standard_DS3_v2), description,
        optional groups (JupyterHub groups allowed; empty: everyone), optional default: true. Sizes
        the workspace's region does not offer are hidden. Default: Small, Medium, Large, GPU.""",
    )
    show_prices = Bool(False, config=True, help="Show Azure's estimated hourly Linux price next to each size.")
    sizes_cache_seconds = Float(3600, config=True, help="Seconds to cache the region's VM-size list.")

    # ---- instances ------------------------------------------------------

    instance_name_prefix = Unicode(
        "jh", config=True, help="Prefix of instance names: 1-8 lowercase letters/digits, starting with a letter."
    )
    hub_id = Unicode(
        "",
        config=True,
        help="Distinguishes this hub's instance names from another hub's in the same region (names are region-unique).",
    )
    tags = Dict(config=True, help="Azure tags for every instance (the spawner adds jupyterhub-user and jupyterhub-server).")
    subnet_id = Unicode("", config=True, help="Full ARM id of a VNet subnet for the instances. Default: none.")
    enable_public_ip = Bool(True, config=True, help="Give instances a public IP. False needs subnet_id (or a managed VNet).")
    setup_script = Unicode(
        "", config=True, help="Startup script on the workspace file share (e.g. Users/admin/setup.sh), run at each start."
    )
    setup_script_args = Unicode("", config=True, help="Arguments for setup_script.")
    idle_shutdown_minutes = Integer(
        None,
        allow_none=True,
        config=True,
        help="""AML's own idle shutdown (15-4320 minutes), a backstop for the hub's culler. AML does not
        see SSH-started servers, so the default is off in proxy mode and 60 in redirect mode.""",
    )
    stop_action = Unicode(
        "stop",
        config=True,
        help="""What stopping a server does to its instance: "stop" (default: no compute cost, disk and
        files kept), "delete" (removes the instance and its disk), or "keep" (leave it running).""",
    )

    # ---- connection -----------------------------------------------------

    connect_mode = Unicode(
        "proxy",
        config=True,
        help=""""proxy": the hub starts jupyterhub-singleuser on the instance over SSH and proxies to
        it (all hub features). "redirect": the instance is created on behalf of the user (needs
        auth_state with the Azure AD oid) and the user is sent to the instance's own JupyterLab.""",
    )
    ssh_key_file = Unicode(
        "aml-jupyterhub-ssh/id_ed25519",
        config=True,
        help="The hub's SSH private key (generated, 0600, if missing; .pub beside it). Relative to the hub's working directory.",
    )
    ssh_user = Unicode("azureuser", config=True, help="SSH user on the instance.")
    ssh_port = Integer(0, config=True, help="SSH port; 0 (default): the port the instance reports (50000 on a public IP).")
    ssh_address = Unicode("public", config=True, help='Address to SSH to: "public" IP or "private" IP (hub in the same VNet).')
    ssh_connect_timeout = Float(20, config=True, help="Seconds to wait for the instance's SSH server.")
    ssh_ready_timeout = Float(
        180, config=True, help="Seconds to keep retrying SSH after the instance reports Running (sshd may still be booting)."
    )
    singleuser_pythons = List(
        Unicode(),
        default_value=remote.DEFAULT_PYTHONS,
        config=True,
        help="Pythons on the instance to look in for jupyterhub matching the hub's version, in order.",
    )
    singleuser_install_command = Unicode(
        remote.DEFAULT_INSTALL,
        config=True,
        help="Shell command that installs jupyterhub=={version} into the user's space when no Python has it.",
    )
    install_timeout = Float(900, config=True, help="Seconds allowed for installing JupyterHub on the instance.")
    tunnel_bind_ip = Unicode("127.0.0.1", config=True, help="Hub-side address the SSH tunnel to the server listens on.")
    tunnel_connect_ip = Unicode("", config=True, help="Address the proxy uses to reach the tunnel. Default: tunnel_bind_ip.")

    # ---- timing and limits ---------------------------------------------

    arm_poll_interval = Float(
        300,
        config=True,
        help="In proxy mode, poll() asks AML about the instance at most this often (seconds); SSH checks the server in between.",
    )
    call_timeout = Float(120, config=True, help="Budget in seconds for one AML call, retries included.")
    operation_timeout = Float(1800, config=True, help="Seconds allowed for one long AML operation (create, start, stop, delete).")
    retry_total = Integer(4, config=True, help="Retries of a throttled (429) or failed (5xx) AML call.")
    wait_interval = Float(5, config=True, help="Seconds between reads while waiting on an operation the hub did not start.")
    executor_threads = Integer(16, config=True, help="Threads for blocking Azure SDK calls, shared by all spawners.")

    @default("start_timeout")
    def _start_timeout_default(self):
        return 20 * 60

    @default("http_timeout")
    def _http_timeout_default(self):
        return 60

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # start() validates and applies user_options (it needs the region's
        # sizes and the user's groups); this only tells JupyterHub they are handled.
        return lambda spawner, user_options: None

    @default("env_keep")
    def _env_keep_default(self):
        # The hub's PATH and venv mean nothing on the instance.
        return ["LANG", "LC_ALL", "JUPYTERHUB_SINGLEUSER_APP"]

    @validate("connect_mode")
    def _check_mode(self, proposal):
        if proposal.value not in ("proxy", "redirect"):
            raise TraitError(f'connect_mode must be "proxy" or "redirect", not {proposal.value!r}')
        return proposal.value

    @validate("stop_action")
    def _check_stop_action(self, proposal):
        if proposal.value not in ("stop", "delete", "keep"):
            raise TraitError(f'stop_action must be "stop", "delete" or "keep", not {proposal.value!r}')
        return proposal.value

    @validate("ssh_address")
    def _check_address(self, proposal):
        if proposal.value not in ("public", "private"):
            raise TraitError(f'ssh_address must be "public" or "private", not {proposal.value!r}')
        return proposal.value

    @validate("instance_name_prefix")
    def _check_prefix(self, proposal):
        if not naming.valid_prefix(proposal.value):
            raise TraitError("instance_name_prefix must be 1-8 lowercase letters or digits, starting with a letter")
        return proposal.value

    @validate("idle_shutdown_minutes")
    def _check_idle(self, proposal):
        v = proposal.value
        if v not in (None, 0) and not 15 <= v <= 4320:
            raise TraitError("idle_shutdown_minutes must be between 15 and 4320 (3 days), or 0/None for off")
        return v

    @validate("profiles")
    def _check_profiles(self, proposal):
        try:
            parse_profiles(proposal.value)
        except ValueError as e:
            raise TraitError(f"profiles: {e}") from None
        return proposal.value

    # ---- state ----------------------------------------------------------

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reset_runtime()
        self._forget_instance()

    def _forget_instance(self):
        """What get_state saves, emptied."""
        self.instance_name = ""
        self.resource_id = ""
        self.workspace: dict = {}
        self.mode = ""
        self.vm_size = ""
        self.profile_slug = ""
        self.ssh_host = ""
        self.ssh_port_used = 0
        self.host_key = ""
        self.remote_port = self.api_port = self.local_port = self.pid = self.pid_start = 0
        self.lab_url = ""

    def _reset_runtime(self):
        self._conn: Connection | None = None
        self._api_tunnel = False  # the reverse tunnel is up on self._conn
        self._conn_lock = asyncio.Lock()
        self._progress = ProgressLog()
        self._last_arm_check = 0.0

    def get_state(self):
        state = super().get_state()
        if self.instance_name:
            state.update(
                version=STATE_VERSION,
                instance_name=self.instance_name,
                resource_id=self.resource_id,
                workspace=self.workspace,
                mode=self.mode,
                vm_size=self.vm_size,
                profile=self.profile_slug,
                ssh_host=self.ssh_host,
                ssh_port=self.ssh_port_used,
                host_key=self.host_key,
                remote_port=self.remote_port,
                api_port=self.api_port,
                local_port=self.local_port,
                pid=self.pid,
                pid_start=self.pid_start,
                lab_url=self.lab_url,
            )
        return state

    def load_state(self, state):
        super().load_state(state)
        if not state.get("instance_name"):
            return
        self.instance_name = state["instance_name"]
        self.resource_id = state.get("resource_id", "")
        self.workspace = state.get("workspace") or {}
        self.mode = state.get("mode", self.connect_mode)
        self.vm_size = state.get("vm_size", "")
        self.profile_slug = state.get("profile", "")
        self.ssh_host = state.get("ssh_host", "")
        self.ssh_port_used = int(state.get("ssh_port") or 0)
        self.host_key = state.get("host_key", "")
        self.remote_port = int(state.get("remote_port") or 0)
        self.api_port = int(state.get("api_port") or 0)
        self.local_port = int(state.get("local_port") or 0)
        self.pid = int(state.get("pid") or 0)
        self.pid_start = int(state.get("pid_start") or 0)
        self.lab_url = state.get("lab_url", "")
        if self.mode == "redirect" and self.lab_url:
            shared_redirector().register(self._prefix, self.lab_url)

    def clear_state(self):
        super().clear_state()
        self._forget_instance()

    # ---- helpers --------------------------------------------------------

    @property
    def _prefix(self) -> str:
        return self.server.base_url if self.server else f"/user/{self.user.name}/{self.name}"

    def _default_project(self) -> Project:
        return Project(
            slug="default",
            display_name=self.workspace_name or "default",
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            workspace_name=self.workspace_name,
        )

    def _projects(self) -> list[Project]:
        return parse_projects(self.projects, self._default_project())

    def _project_from_state(self) -> Project:
        ws = self.workspace
        if ws:
            return Project("state", ws.get("workspace_name", ""), ws["subscription_id"], ws["resource_group"], ws["workspace_name"])
        return self._projects()[0]

    def _credential(self):
        if self.credential is not None:
            return self.credential
        if not is_azure_endpoint(self.arm_endpoint):
            return StaticTokenCredential(self.emulator_token)
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    async def _client(self, project: Project) -> ComputeClient:
        if self.compute_client_factory is not None:
            return self.compute_client_factory(self, project)
        key = (*project.key, self.arm_endpoint, self.ca_bundle, id(self.credential))
        async with _clients_lock():
            client = _clients.get(key)
            if client is None:
                if not all(project.key):
                    raise spawn_error(
                        "The hub has no Azure ML workspace configured (subscription, resource group, workspace). "
                        "An admin must set them.",
                        reason="config",
                        status_code=500,
                    )
                executor = shared_executor(self.executor_threads)
                # Importing and building the SDK client takes a second or two: not on the event loop.
                ml = await asyncio.get_running_loop().run_in_executor(
                    executor,
                    lambda: make_ml_client(
                        self._credential(),
                        *project.key,
                        arm_endpoint=self.arm_endpoint,
                        ca_bundle=self.ca_bundle or None,
                        retry_total=self.retry_total,
                    ),
                )
                client = ComputeClient(
                    ml,
                    executor=executor,
                    call_timeout=self.call_timeout,
                    operation_timeout=self.operation_timeout,
                    wait_poll_interval=self.wait_interval,
                )
                _clients[key] = client
        return client

    async def _offered_sizes(self, project: Project):
        key = (*project.key, self.arm_endpoint)
        cached = _sizes_cache.get(key)
        if cached and time.monotonic() - cached[0] < self.sizes_cache_seconds:
            return cached[1]
        try:
            sizes = await (await self._client(project)).list_sizes()
        except ComputeError as e:
            self.log.warning("could not list VM sizes for %s (showing every profile): %s", project.workspace_name, e)
            return None
        offered = {s.name.lower(): s for s in sizes}
        _sizes_cache[key] = (time.monotonic(), offered)
        return offered

    def _user_groups(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", []) or []}

    async def _menu(self, project: Project | None = None):
        projects = self._projects()
        allowed = [p for p in projects if p.allowed_for(self._user_groups(), bool(self.user.admin))]
        offered = await self._offered_sizes(project or (allowed[0] if allowed else projects[0]))
        return menu_for(parse_profiles(self.profiles), projects, self._user_groups(), bool(self.user.admin), offered)

    def _name_for(self) -> str:
        return naming.instance_name(self.user.name, self.name or "", prefix=self.instance_name_prefix, hub_id=self.hub_id)

    def _emit(self, phase: str, message: str, **kw) -> None:
        event = self._progress.emit(phase, message, **kw)
        self.log.info("[%s] %s%% %s", self._log_name, event["progress"], message)

    async def _on_progress(self, p) -> None:
        state = p.state or {"create": "Creating", "start": "Starting"}.get(p.operation, p.operation)
        pct = p.percent if p.percent is not None and p.percent < 100 else None
        phase = p.operation if p.operation in ("create", "start", "delete") else "wait"
        detail = f" ({p.status})" if p.status and p.status not in ("InProgress", "Succeeded") else ""
        hint = {"create": " Creating an instance typically takes about 5 minutes.",
                "start": " Starting typically takes 1-3 minutes."}.get(phase, "")
        self._emit(
            phase,
            f"Compute instance {self.instance_name} is {state}{detail}, {fmt_elapsed(p.elapsed)} elapsed.{hint}",
            fraction=None if pct is None else pct / 100,
            elapsed=p.elapsed,
        )

    # ---- the options form -----------------------------------------------

    async def get_options_form(self):
        if self.options_form:
            return await super().get_options_form()
        menu = await self._menu()
        if len(menu.profiles) <= 1 and len(menu.projects) <= 1:
            return ""  # one choice: no question
        return render_form(menu, self.show_prices, self.user_options or {})

    def options_from_form(self, formdata):
        return {k: formdata[k][0] for k in ("profile", "project") if formdata.get(k) and formdata[k][0]}

    # ---- start ----------------------------------------------------------

    async def start(self):
        self._progress = ProgressLog()
        # Our own deadline, just inside the hub's start_timeout, so the user
        # reads what was still going on instead of an empty "Spawn failed".
        budget = self.start_timeout - min(5.0, self.start_timeout * 0.1)
        try:
            return await asyncio.wait_for(self._start(), budget)
        except asyncio.TimeoutError:
            last = self._progress.events[-1]["message"] if self._progress.events else ""
            raise spawn_error(
                f"Your server was not ready within {fmt_elapsed(budget)} (start_timeout). Last step: {last} "
                "The instance will be stopped; try again later, or ask an admin to raise start_timeout.",
                reason="timeout",
                status_code=500,
            ) from None
        finally:
            self._progress.finish()

    async def _start(self):
        self._emit("prepare", "Checking your options.")
        menu = await self._menu()
        try:
            profile, project = choose(menu, self.user_options)
        except OptionsError as e:
            raise spawn_error(str(e), reason="options") from None
        if project.key != menu.projects[0].key:
            menu = await self._menu(project)
            try:
                profile, project = choose(menu, self.user_options)
            except OptionsError as e:
                raise spawn_error(str(e), reason="options") from None

        mode = self.connect_mode
        client = await self._client(project)
        name = self._name_for()
        self.instance_name = name
        self.workspace = {"subscription_id": project.subscription_id, "resource_group": project.resource_group,
                          "workspace_name": project.workspace_name}
        self.mode = mode
        self.vm_size = profile.vm_size
        self.profile_slug = profile.slug

        spec = await self._spec(name, profile, mode)
        async with _lock_for(name):
            info = await self._ensure_instance(client, spec)
            self.resource_id = info.id or ""
            if info.vm_size and info.vm_size.lower() != profile.vm_size.lower():
                self._emit("connect", f"Note: your existing instance {name} has size {info.vm_size}; "
                           f"it is reused (delete it to get {profile.vm_size}).")
            if mode == "redirect":
                return await self._connect_redirect(info)
            return await self._connect_proxy(info)

    async def _spec(self, name: str, profile, mode: str) -> InstanceSpec:
        tags = {**self.tags, "jupyterhub-user": self.user.name, "jupyterhub-server": self.name or "default"}
        idle = self.idle_shutdown_minutes
        if idle is None:
            idle = 60 if mode == "redirect" else 0
        kwargs = dict(
            name=name,
            vm_size=profile.vm_size,
            tags=tags,
            idle_minutes=idle or None,
            subnet_id=self.subnet_id or None,
            enable_public_ip=self.enable_public_ip,
            setup_script=self.setup_script or None,
            setup_script_args=self.setup_script_args or None,
            description=f"JupyterHub server of {self.user.name}" + (f" ({self.name})" if self.name else ""),
        )
        if mode == "redirect":
            oid, tid = await self._azure_identity()
            kwargs["assigned_user"] = (oid, tid)
        else:
            kwargs["ssh_public_key"] = public_key_text(ensure_keypair(self.ssh_key_file))
        return InstanceSpec(**kwargs)

    async def _azure_identity(self) -> tuple[str, str]:
        auth_state = await self.user.get_auth_state() or {}
        claims = auth_state.get("user") or {}
        oid, tid = claims.get("oid"), claims.get("tid")
        if not (oid and tid):
            raise spawn_error(
                "Redirect mode needs your Azure AD object id, but the hub has no login details for you. "
                "Log out and log in again; an admin must enable auth_state (JUPYTERHUB_CRYPT_KEY).",
                reason="auth_state",
            )
        return oid, tid

    async def _ensure_instance(self, client: ComputeClient, spec: InstanceSpec):
        name = spec.name
        started = time.monotonic()
        try:
            info = await client.get(name)
            if info is None:
                self._emit("create", f"Creating compute instance {name} ({spec.vm_size}).")
            elif info.is_failed and info.state == "CreateFailed":
                # It never ran and holds no data; AML cannot start it, only replace it.
                self._emit("delete", f"Compute instance {name} failed to create earlier; removing it to try again.")
                await client.delete(name, self._on_progress)
                info = None
            elif info.is_running:
                self._emit("start", f"Compute instance {name} is already running.", fraction=1.0)
            else:
                self._emit("start", f"Compute instance {name} is {info.state}; starting it.")
            info, how = await client.ensure_running(spec, self._on_progress, current=info)
        except InstanceFailed as e:
            current = await self._safe_get(client, name)
            if current is not None and current.state == "CreateFailed":
                self.log.warning("deleting %s, which AML failed to create: %s", name, e)
                try:
                    await client.delete(name)
                except ComputeError:
                    self.log.exception("could not delete failed instance %s", name)
            raise spawn_error(
                f"Azure could not provide your compute instance: {e.message} "
                "Try again, or pick another size.",
                reason="instance_failed",
                status_code=500,
            ) from None
        except ComputeError as e:
            raise spawn_error(e.message, reason=type(e).__name__, status_code=500) from None
        self._emit("connect", f"Compute instance {name} is Running ({how}, {fmt_elapsed(time.monotonic() - started)}).",
                   fraction=0.0)
        return info

    async def _safe_get(self, client, name):
        try:
            return await client.get(name)
        except ComputeError:
            return None

    # ---- redirect mode --------------------------------------------------

    async def _connect_redirect(self, info):
        if not info.lab_url:
            raise spawn_error(
                f"Compute instance {info.name} reports no JupyterLab endpoint; AML may still be setting it up. Try again.",
                reason="no_endpoint",
                status_code=500,
            )
        self.lab_url = info.lab_url
        redirector = shared_redirector()
        await redirector.ensure_started()
        redirector.register(self._prefix, info.lab_url)
        self._emit("launch", f"Sending you to JupyterLab on {info.name}.", fraction=1.0)
        return redirector.url

    # ---- proxy mode -----------------------------------------------------

    def _ssh_target(self, info) -> SSHTarget:
        host = info.private_ip if self.ssh_address == "private" else info.public_ip
        if not host:
            raise spawn_error(
                f"Compute instance {info.name} has no {self.ssh_address} IP address to SSH to. "
                + ("Set ssh_address to 'private' for instances without a public IP." if self.ssh_address == "public"
                   else "Is the instance in a VNet?"),
                reason="no_address",
                status_code=500,
            )
        port = self.ssh_port or info.ssh_port or 50000
        return SSHTarget(host, int(port), self.ssh_user)

    async def _open_ssh(self, target: SSHTarget, deadline: float) -> Connection:
        key = ensure_keypair(self.ssh_key_file)
        last = None
        while True:
            try:
                return await Connection.open(target, key, host_key=self.host_key or None,
                                             timeout=self.ssh_connect_timeout)
            except SSHError as e:
                last = e
                if "host key" in str(e) or "refused the hub's key" in str(e) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(2)
        raise last  # pragma: no cover

    async def _connect_proxy(self, info):
        target = self._ssh_target(info)
        self.ssh_host, self.ssh_port_used = target.host, target.port
        self._emit("connect", f"Connecting to {info.name} over SSH ({target.host}:{target.port}).")
        try:
            conn = await self._open_ssh(target, time.monotonic() + self.ssh_ready_timeout)
        except SSHError as e:
            raise spawn_error(f"Could not reach your compute instance: {e}", reason="ssh", status_code=500) from None
        await self._set_connection(conn)
        self.host_key = conn.host_key or ""
        version = jupyterhub.__version__
        try:
            found = await remote.probe(conn, version, list(self.singleuser_pythons))
            if found is None:
                self._emit("install", f"Installing JupyterHub {version} on {info.name} (first start only).")
                await remote.install(conn, self.singleuser_install_command, version, self.install_timeout)
                found = await remote.probe(conn, version, list(self.singleuser_pythons))
                if found is None:
                    raise SSHError(f"JupyterHub {version} is still not found after installing it")
            self.remote_port = found.port
            self._emit("launch", f"Starting the Jupyter server (JupyterHub {found.version}) on {info.name}.")
            if self.hub_connect_url is None:
                self.api_port = await conn.forward_remote(*self._hub_api_address(), self.api_port or 0)
                self._api_tunnel = True
            self.port = self.remote_port
            self.ip = "127.0.0.1"
            env = self._instance_env()
            argv = self._argv(found.python)
            self.pid, self.pid_start = await remote.launch(conn, self._server_key, argv, env)
            self.local_port = await conn.forward_local(self.remote_port, self.local_port or 0, self.tunnel_bind_ip)
            await self._wait_listening(conn)
        except SSHError as e:
            raise spawn_error(f"Could not start Jupyter on your compute instance: {e}", reason="ssh",
                                 status_code=500) from None
        self._emit("launch", "Jupyter server is up; connecting you.", fraction=1.0)
        self._last_arm_check = time.monotonic()  # just seen Running: the first poll need not ask AML
        return self._url()

    @property
    def _server_key(self) -> str:
        return f"{self.user.name}-{self.name or 'default'}"

    def _url(self) -> str:
        return f"http://{self.tunnel_connect_ip or self.tunnel_bind_ip}:{self.local_port}"

    def _hub_api_address(self) -> tuple[str, int]:
        parsed = urlparse(self.hub.api_url)
        host = parsed.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return host, parsed.port or 80

    def _instance_env(self) -> dict:
        env = self.get_env()
        if self.hub_connect_url is None:
            api_path = urlparse(self.hub.api_url).path
            old = env["JUPYTERHUB_API_URL"]
            new = f"http://127.0.0.1:{self.api_port}{api_path}"
            for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
                if env.get(key, "").startswith(old):
                    env[key] = new + env[key][len(old):]
        return {k: v for k, v in env.items() if v is not None}

    def _argv(self, python: str) -> list[str]:
        if list(self.cmd) == ["jupyterhub-singleuser"]:
            base = [python, "-m", "jupyterhub.singleuser"]
        else:
            base = list(self.cmd)
        return base + list(self.get_args())

    async def _wait_listening(self, conn: Connection) -> None:
        """Until the server accepts connections through the tunnel, or its process ends."""
        deadline = time.monotonic() + self.http_timeout
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.tunnel_bind_ip, self.local_port), 5
                )
                writer.write(b"GET " + self._prefix.encode() + b"api HTTP/1.0\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.read(12), 5)
                writer.close()
                if head.startswith(b"HTTP/"):
                    return
            except (OSError, asyncio.TimeoutError):
                pass
            if not await remote.alive(conn, self.pid, self.pid_start):
                tail = await remote.log_tail(conn, self._server_key)
                raise SSHError(f"the Jupyter server exited while starting. Its log ends with:\n{tail}")
            await asyncio.sleep(0.2)
        raise SSHError(f"the Jupyter server did not answer within {self.http_timeout:.0f} s")

    async def _set_connection(self, conn: Connection) -> None:
        old, self._conn = self._conn, conn
        if old is not None:
            await old.close()

    async def _reattach(self) -> Connection:
        """The live SSH connection, re-made with its tunnels after a hub restart or a drop."""
        async with self._conn_lock:
            conn = self._conn
            if conn is None or not conn.alive:
                if conn is not None:
                    # a dead connection may still hold the instance's end of the reverse tunnel
                    await conn.close()
                    self._conn = None
                target = SSHTarget(self.ssh_host, self.ssh_port_used, self.ssh_user)
                conn = await Connection.open(target, ensure_keypair(self.ssh_key_file),
                                             host_key=self.host_key or None, timeout=self.ssh_connect_timeout)
                try:
                    # the user's way in first: it needs nothing but this connection
                    if self.remote_port:
                        self.local_port = await conn.forward_local(self.remote_port, self.local_port,
                                                                   self.tunnel_bind_ip)
                except (SSHError, OSError):
                    await conn.close()
                    raise
                await self._set_connection(conn)
                self._api_tunnel = False
                self.log.info("[%s] re-attached to %s (tunnel on port %s)", self._log_name, self.instance_name,
                              self.local_port)
            if self.hub_connect_url is None and self.api_port and not self._api_tunnel:
                # The server was started with this port in its hub API URL. An
                # instance-side sshd may hold it a while after the old connection
                # died; then the next poll tries again.
                try:
                    await conn.forward_remote(*self._hub_api_address(), self.api_port)
                    self._api_tunnel = True
                except SSHError as e:
                    self.log.warning("[%s] reverse tunnel to the hub API not back yet: %s", self._log_name, e)
            return conn

    async def get_url(self):
        if self.mode == "redirect":
            return shared_redirector().url if shared_redirector().port else None
        if self.local_port:
            return self._url()
        return None

    # ---- poll -----------------------------------------------------------

    async def _instance_verdict(self) -> int | None:
        """Ask AML: None if the instance may still be serving, 0 if it definitely is not."""
        self._last_arm_check = time.monotonic()
        try:
            info = await (await self._client(self._project_from_state())).get(self.instance_name)
        except ComputeError as e:
            self.log.warning("[%s] could not read %s (%s); assuming it still runs", self._log_name, self.instance_name, e)
            return None
        if info is None:
            self.log.warning("[%s] compute instance %s no longer exists", self._log_name, self.instance_name)
            return 0
        if info.is_running or info.state in ("Starting", "Restarting", "Creating", "SettingUp"):
            return None
        self.log.warning("[%s] compute instance %s is %s", self._log_name, self.instance_name, info.state)
        return 0

    async def poll(self):
        if not self.instance_name:
            return 0
        if self.mode == "redirect":
            verdict = await self._instance_verdict()
            if verdict is None and self.lab_url:
                # after a hub restart the endpoint the proxy routes to must exist again
                await shared_redirector().ensure_started()
                shared_redirector().register(self._prefix, self.lab_url)
            return verdict
        if not self.pid:
            return await self._instance_verdict()
        try:
            conn = await self._reattach()
            is_alive = await remote.alive(conn, self.pid, self.pid_start)
        except (SSHError, OSError) as e:
            self.log.info("[%s] SSH check of %s failed (%s); asking AML", self._log_name, self.instance_name, e)
            return await self._instance_verdict()
        if not is_alive:
            verdict = await self._instance_verdict()
            return 1 if verdict is None else verdict
        if time.monotonic() - self._last_arm_check > self.arm_poll_interval:
            return await self._instance_verdict()
        return None

    # ---- stop -----------------------------------------------------------

    async def stop(self, now=False):
        name = self.instance_name or self._name_for()
        async with _lock_for(name):
            await self._stop_server()
            if self.mode == "redirect" or self.lab_url:
                shared_redirector().unregister(self._prefix)
            if self.stop_action == "keep":
                self.log.info("[%s] leaving %s running (stop_action=keep)", self._log_name, name)
                return
            client = await self._client(self._project_from_state())
            try:
                info = await client.get(name)
                if info is None:
                    return
                if self.stop_action == "delete":
                    self.log.info("[%s] deleting %s (stop_action=delete)", self._log_name, name)
                    await client.delete(name)
                    return
                if info.is_transient and info.state not in ("Stopping",):
                    info = await client.wait_for_state(name, {"Running", "Stopped"})
                if info.is_running:
                    self.log.info("[%s] stopping %s", self._log_name, name)
                    await client.stop(name)
            except NotFound:
                return
            except ComputeError as e:
                self.log.error("[%s] could not stop compute instance %s: %s. It may still be running and costing "
                               "money; stop it in Azure ML studio.", self._log_name, name, e)
                raise

    async def _stop_server(self) -> None:
        conn = self._conn
        if self.pid and self.ssh_host:
            try:
                conn = await self._reattach()
                await remote.stop(conn, self.pid)
            except (SSHError, OSError) as e:
                self.log.info("[%s] could not stop the server process over SSH (%s)", self._log_name, e)
        self._conn = None
        if conn is not None:
            await conn.close()

    # ---- progress -------------------------------------------------------

    async def progress(self):
        async for event in self._progress.stream():
            yield event
