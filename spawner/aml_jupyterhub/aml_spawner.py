"""AMLSpawner: each user's (and each named server's) notebook server on their
own Azure Machine Learning compute instance.

    c.JupyterHub.spawner_class = "aml"

The flow is one way: options -> profile -> instance spec -> AML calls ->
running instance -> connection -> URL. This class orchestrates; the work is
in ``profiles``, ``naming``, ``ownership``, ``keys``, ``compute``,
``ssh``/``remote``, ``redirector`` and ``fleet`` (what every server of the hub
shares: instance locks, clients, the reconciler, background settling).

An instance is this server's only when its tags say so (``ownership``); it
is remembered in the server's state across stops (and renames), so the
server always comes back to its own disk; and whenever a server ends (stop,
crash, failed start) its instance is brought to rest per ``stop_action``,
retried in the background until AML confirms.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

import jupyterhub
from jupyterhub.spawner import SpawnException, Spawner
from tornado import web
from traitlets import default

from . import fleet as fleet_module
from . import naming, ownership, remote
from .compute import (
    ComputeClient,
    ComputeError,
    ForeignInstance,
    InstanceFailed,
    InstanceSpec,
    make_ml_client,
    shared_executor,
)
from .clouds import cloud
from .config import AMLSettings
from .credentials import credential_problem, make_credential
from .fleet import instance_key, settle_once
from .keys import KeyStore
from .profiles import OptionsError, Project, choose, menu_for, parse_profiles, parse_projects, render_form
from .progress import ProgressLog, fmt_elapsed
from .reconciler import Reconciler
from .ssh import Connection, SSHError, SSHTarget, public_key_text, read_key

STATE_VERSION = 2

# What get_state saves: (attribute, state key, empty value). The first group
# is the instance itself and outlives a stop (a server always comes back to
# its own instance, also after a rename); the second is one run of the server.
INSTANCE_FIELDS = (
    ("instance_name", "instance_name", ""),
    ("workspace", "workspace", None),
    ("owner_record", "owner", None),
    ("ssh_key_kind", "ssh_key", ""),
)
RUN_FIELDS = (
    ("resource_id", "resource_id", ""),
    ("mode", "mode", ""),
    ("vm_size", "vm_size", ""),
    ("profile_slug", "profile", ""),
    ("ssh_host", "ssh_host", ""),
    ("ssh_port_used", "ssh_port", 0),
    ("host_key", "host_key", ""),
    ("remote_port", "remote_port", 0),
    ("api_port", "api_port", 0),
    ("local_port", "local_port", 0),
    ("pid", "pid", 0),
    ("pid_start", "pid_start", 0),
    ("lab_url", "lab_url", ""),
)
ALIVE_STATES = frozenset({"Running", "Starting", "Restarting", "Creating", "SettingUp"})


def spawn_error(message: str, *, reason: str, status_code: int = 400) -> SpawnException:
    """A SpawnException whose message the user sees as is (in the progress
    stream and the REST answer), without JupyterHub's exception prefix."""
    err = SpawnException(message, reason=reason, status_code=status_code)
    err.jupyterhub_message = message
    return err


def _empty(value):
    return dict(value) if isinstance(value, dict) else value


class AMLSpawner(AMLSettings, Spawner):
    """Spawn notebook servers on Azure Machine Learning compute instances.

    Its settings (traits) are in ``config.AMLSettings``; here, JupyterHub's
    own traits get the defaults a cloud VM needs."""

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

    # ---- state ----------------------------------------------------------

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reset_runtime()
        self._forget(INSTANCE_FIELDS + RUN_FIELDS)
        self.fleet = fleet_module.shared(self.log)
        self.fleet.spawners.add(self)

    def _forget(self, fields) -> None:
        for attr, _key, empty in fields:
            setattr(self, attr, _empty(empty))

    def _reset_runtime(self):
        self._conn: Connection | None = None
        self._api_tunnel = False  # the reverse tunnel is up on self._conn
        self._conn_lock = asyncio.Lock()
        self._progress = ProgressLog()
        self._last_arm_check = 0.0
        self._seen_alive_at = 0.0  # when this spawner last saw the instance alive itself (monotonic)

    def get_state(self):
        state = super().get_state()
        if self.instance_name:
            state["version"] = STATE_VERSION
            for attr, key, _empty_value in INSTANCE_FIELDS + RUN_FIELDS:
                state[key] = getattr(self, attr)
        return state

    def load_state(self, state):
        super().load_state(state)
        if not state.get("instance_name"):
            return
        for attr, key, empty in INSTANCE_FIELDS + RUN_FIELDS:
            value = state.get(key, empty)
            setattr(self, attr, type(empty)(value or empty) if isinstance(empty, (int, str)) else value)
        self.mode = self.mode or self.connect_mode

    def clear_state(self):
        """After a stop: forget the run, remember the instance."""
        super().clear_state()
        self._forget(RUN_FIELDS)

    # ---- helpers --------------------------------------------------------

    @property
    def _prefix(self) -> str:
        return self.server.base_url if self.server else f"/user/{self.user.name}/{self.name}"

    @property
    def owner(self) -> ownership.Owner:
        """Whose instance this server uses: recorded with the instance, else this server."""
        return ownership.Owner.from_state(self.owner_record) or self._owner_now()

    def _owner_now(self) -> ownership.Owner:
        return ownership.Owner(self.hub_id, self.user.name, self.name or "")

    @property
    def instance_key(self):
        if not self.instance_name:
            return None
        return instance_key(self._project_from_state().key, self.instance_name)

    @property
    def _server_started(self) -> bool:
        return bool(self.lab_url) if self.mode == "redirect" else bool(self.pid)

    @property
    def key_store(self) -> KeyStore:
        return KeyStore(f"{self.secrets_dir}/instance-keys")

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
        kind, token = self.credential_type, self.static_token
        if self.emulator_token and not token:
            self.log.warning("AMLSpawner.emulator_token is deprecated: set credential_type = 'static-token' "
                             "and static_token instead")
            kind, token = "static-token", self.emulator_token
        problem = credential_problem(kind, arm_endpoint=self.arm_endpoint, static_token=token)
        if problem:
            raise spawn_error(f"The hub's Azure credential is misconfigured: {problem}. An admin must fix it.",
                              reason="config", status_code=500)
        return make_credential(kind, cloud(self.azure_cloud), static_token=token)

    async def _client(self, project: Project) -> ComputeClient:
        if self.compute_client_factory is not None:
            return self.compute_client_factory(self, project)
        # the credential object itself is in the key (held, so never confused with a later one)
        key = (*project.key, self.azure_cloud, self.arm_endpoint, self.ca_bundle, self.credential,
               self.credential_type, self.static_token or self.emulator_token)
        async with self.fleet.clients_lock:
            client = self.fleet.clients.get(key)
            if client is None:
                if not all(project.key):
                    raise spawn_error(
                        "The hub has no Azure ML workspace configured (subscription, resource group, workspace). "
                        "An admin must set them.",
                        reason="config",
                        status_code=500,
                    )
                executor = shared_executor(self.executor_threads)
                credential = self._credential()
                # Importing and building the SDK client takes a second or two: not on the event loop.
                ml = await asyncio.get_running_loop().run_in_executor(
                    executor,
                    lambda: make_ml_client(
                        credential,
                        *project.key,
                        cloud_name=cloud(self.azure_cloud).sdk_name,
                        arm_endpoint=self.arm_endpoint or None,
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
                self.fleet.clients[key] = client
        return client

    async def _reconciler(self, project: Project) -> Reconciler | None:
        """The shared reconciler of the project's workspace (started on first use), or None if off."""
        if self.reconcile_interval <= 0:
            return None
        client = await self._client(project)

        def make() -> Reconciler:
            return Reconciler(
                project.workspace_name,
                client.list,
                hub_id=self.hub_id,
                interval=self.reconcile_interval,
                stop_action=self.stop_action,
                in_use=lambda: self.fleet.in_use(project.key),
                act=lambda action: self.fleet.act(
                    client, project.key, action, retry_delay=self.wait_interval,
                    on_deleted=lambda name=action.name: self.key_store.remove(project.key, name)),
            )

        return self.fleet.reconciler(project.key, make)

    async def start_reconcilers(self) -> None:
        """At hub start: make (or read) the hub's id, and start the reconciler
        of every configured workspace."""
        self.log.info("AML spawner: hub id %s, reconcile_interval %s s", self.hub_id, self.reconcile_interval)
        for project in self._projects():
            if all(project.key):
                await self._reconciler(project)

    async def _offered_sizes(self, project: Project):
        key = (*project.key, self.arm_endpoint)
        cached = self.fleet.sizes.get(key)
        if cached and time.monotonic() - cached[0] < self.sizes_cache_seconds:
            return cached[1]
        try:
            sizes = await (await self._client(project)).list_sizes()
        except ComputeError as e:
            self.log.warning("could not list VM sizes for %s (showing every profile): %s", project.workspace_name, e)
            return None
        offered = {s.name.lower(): s for s in sizes}
        self.fleet.sizes[key] = (time.monotonic(), offered)
        return offered

    def _user_groups(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", []) or []}

    async def _menu(self, project: Project | None = None):
        projects = self._projects()
        allowed = [p for p in projects if p.allowed_for(self._user_groups(), bool(self.user.admin))]
        offered = await self._offered_sizes(project or (allowed[0] if allowed else projects[0]))
        return menu_for(parse_profiles(self.profiles), projects, self._user_groups(), bool(self.user.admin), offered)

    def _name_for(self, project: Project) -> str:
        return naming.instance_name(self.user.name, self.name or "", hub_id=self.hub_id,
                                    workspace=naming.workspace_text(project.key), prefix=self.instance_name_prefix)

    def _legacy_name(self) -> str:
        # Version 0.1 keyed names by AML_HUB_ID, empty unless an admin set one.
        hub_id = self.hub_id
        legacy_hub = "" if self._hub_id_generated else hub_id
        return naming.legacy_instance_name(self.user.name, self.name or "", hub_id=legacy_hub,
                                           prefix=self.instance_name_prefix)

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
        self._touched = False  # set once the instance may have been created or started
        # Our own deadline, just inside the hub's start_timeout, so the user
        # reads what was still going on instead of an empty "Spawn failed".
        budget = self.start_timeout - min(5.0, self.start_timeout * 0.1)
        try:
            return await asyncio.wait_for(self._start(), budget)
        except asyncio.TimeoutError:
            self._after_failed_start()
            last = self._progress.events[-1]["message"] if self._progress.events else ""
            raise spawn_error(
                f"Your server was not ready within {fmt_elapsed(budget)} (start_timeout). Last step: {last} "
                "The instance will be stopped; try again later, or ask an admin to raise start_timeout.",
                reason="timeout",
                status_code=500,
            ) from None
        except BaseException:
            self._after_failed_start()
            raise
        finally:
            self._progress.finish()

    def _after_failed_start(self) -> None:
        """No server: nothing may keep running. Stop what the start launched and
        settle the instance per stop_action, in a task of its own (this one
        may be being cancelled)."""
        if not self._touched:
            return
        conn, self._conn = self._conn, None
        pid, self.pid = self.pid, 0  # poll() now says "not running": the hub will not call stop()

        async def clean_up():
            if conn is not None:
                if pid:
                    try:
                        await remote.stop(conn, pid)
                    except (SSHError, OSError) as e:
                        self.log.info("[%s] could not stop the half-started server (%s)", self._log_name, e)
                await conn.close()
            self._settle_in_background("its start failed")

        self.fleet.run_in_background(clean_up())

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
        await self._reconciler(project)
        # which instance (reads only); then nothing else acts on it while this start does
        name, owner, info, allow_legacy = await self._resolve_instance(client, project)
        key = instance_key(project.key, name)
        was_settling = self.fleet.cancel_settling(key)
        async with self.fleet.lock(key):
            if was_settling:  # a stop or delete was at work on it: read it as it is now
                info = await self._read_owned(client, name, owner, allow_legacy=allow_legacy)
            self.instance_name = name
            self.workspace = _workspace_record(project)
            self.owner_record = owner.to_state()
            self.mode = mode
            self.vm_size = profile.vm_size
            self.profile_slug = profile.slug
            self._touched = True
            creating = info is None or info.state in ("CreateFailed", "Deleting")
            ssh_key = None
            if mode == "proxy":
                ssh_key = await self._ssh_key(project, name, fresh=creating)
            spec = await self._spec(name, profile, mode, owner, ssh_key)
            info = await self._ensure_instance(client, spec, info, owner, allow_legacy=allow_legacy and not creating)
            self.resource_id = info.id or ""
            if info.vm_size and info.vm_size.lower() != profile.vm_size.lower():
                self._emit("connect", f"Note: your existing instance {name} has size {info.vm_size}; "
                           f"it is reused (delete it to get {profile.vm_size}).")
            if mode == "redirect":
                url = await self._connect_redirect(info)
            else:
                url = await self._connect_proxy(info, ssh_key)
        self._seen_alive_at = time.monotonic()
        return url

    async def _resolve_instance(self, client, project: Project):
        """(name, owner, info or None, allow_legacy) of the instance this start
        uses: the remembered one while it exists, else this server's own name
        (or the instance version 0.1 made for it). Somebody else's instance
        under either name is refused here, before anything is done."""
        name, owner, remembered = self._target_instance(project)
        info = await self._read_owned(client, name, owner, allow_legacy=remembered)
        if info is not None:
            return name, owner, info, remembered
        if remembered:
            # gone (deleted, or never made): start afresh under this server's own name and tags
            fresh, owner = self._name_for(project), self._owner_now()
            if fresh != name:
                name = fresh
                info = await self._read_owned(client, name, owner, allow_legacy=False)
                if info is not None:
                    return name, owner, info, False
        found = await self._find_legacy_instance(client, owner)
        if found is not None:
            return found[0], owner, found[1], True
        return name, owner, None, False

    def _target_instance(self, project: Project) -> tuple[str, ownership.Owner, bool]:
        """The instance to use: the one this server remembers (its name and
        owner as recorded, which survive a rename) when in the same workspace,
        else the name this server maps to. The bool says it is remembered."""
        if self.instance_name and self._project_from_state().key == project.key:
            return self.instance_name, self.owner, True
        if self.instance_name:
            self.log.warning("[%s] now in workspace %s; its instance %s in %s is left as it is", self._log_name,
                             project.workspace_name, self.instance_name, self._project_from_state().workspace_name)
        return self._name_for(project), self._owner_now(), False

    async def _read_owned(self, client, name: str, owner: ownership.Owner, *, allow_legacy: bool):
        """The instance ``name`` if it is ``owner``'s, None if there is none;
        a refusal (nothing touched) if it is somebody else's."""
        try:
            info = await client.get(name)
        except ComputeError as e:
            raise spawn_error(e.message, reason=type(e).__name__, status_code=500) from None
        if info is not None and ownership.verdict(info.tags, owner, allow_legacy=allow_legacy) == ownership.FOREIGN:
            self._refuse_foreign(name, owner, info.tags)
        return info

    def _refuse_foreign(self, name: str, owner: ownership.Owner, tags) -> None:
        shown = {k: str(v)[:80] for k, v in (tags or {}).items() if k in ownership.OWNER_TAGS}
        self.log.warning("[%s] refusing compute instance %s: its tags %s do not name %s on hub %s",
                         self._log_name, name, shown, owner.describe(), owner.hub)
        raise spawn_error(ownership.refusal(name, owner), reason="foreign_instance", status_code=409)

    async def _find_legacy_instance(self, client, owner: ownership.Owner):
        """An instance version 0.1 made for this server (its user and server
        tags exact, no hub tag), found under the name 0.1 gave it."""
        legacy = self._legacy_name()
        try:
            info = await client.get(legacy)
        except ComputeError:
            return None
        if info is None or ownership.verdict(info.tags, owner, allow_legacy=True) == ownership.FOREIGN:
            return None
        self.log.info("[%s] using compute instance %s, made by aml-jupyterhub 0.1", self._log_name, legacy)
        return legacy, info

    async def _ssh_key(self, project: Project, name: str, *, fresh: bool):
        """The key that opens instance ``name``: a new one for a new instance;
        its own, or the 0.1 shared key for instances made with that. (Files
        and key generation in a thread: never on the hub's event loop.)"""
        store = self.key_store
        if fresh:
            self.ssh_key_kind = "instance"
            return await asyncio.to_thread(store.create, project.key, name)
        key = await asyncio.to_thread(store.load, project.key, name)
        if key is not None:
            self.ssh_key_kind = "instance"
            return key
        shared = await asyncio.to_thread(read_key, self.ssh_key_file)
        if shared is not None:
            self.ssh_key_kind = "shared"
            return shared
        raise spawn_error(
            f"The hub has no SSH key for your compute instance {name} (it was made by another hub, or the hub's "
            "secrets volume was replaced). Ask an admin: your files are on the instance; they can copy them off "
            "in Azure ML studio and delete it, and the hub makes a new one at your next start.",
            reason="no_key",
            status_code=500,
        )

    async def _connection_key(self):
        # "" is a server started by version 0.1: its own key if it has one, else the shared one
        key = None
        if self.ssh_key_kind != "shared":
            key = await asyncio.to_thread(self.key_store.load, self._project_from_state().key, self.instance_name)
        if key is None and self.ssh_key_kind != "instance":
            key = await asyncio.to_thread(read_key, self.ssh_key_file)
        if key is None:
            raise SSHError(f"the hub's SSH key for {self.instance_name} is missing from {self.secrets_dir}")
        return key

    async def _spec(self, name: str, profile, mode: str, owner: ownership.Owner, ssh_key) -> InstanceSpec:
        tags = {**self.tags, **owner.tags()}
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
            kwargs["ssh_public_key"] = public_key_text(ssh_key)
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

    async def _ensure_instance(self, client: ComputeClient, spec: InstanceSpec, info, owner, *, allow_legacy: bool):
        name = spec.name
        started = time.monotonic()

        def accept(found) -> bool:
            return ownership.verdict(found.tags, owner, allow_legacy=allow_legacy) != ownership.FOREIGN

        try:
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
            info, how = await client.ensure_running(spec, self._on_progress, current=info, accept=accept)
        except ForeignInstance:
            self._touched = False  # somebody else's, made meanwhile: nothing was done to it
            current = await self._safe_get(client, name)
            self._refuse_foreign(name, owner, current.tags if current else {})
        except InstanceFailed as e:
            current = await self._safe_get(client, name)
            if current is not None and current.state == "CreateFailed" and accept(current):
                self.log.warning("deleting %s, which AML failed to create: %s", name, e)
                try:
                    await client.delete(name)
                    self.key_store.remove(self._project_from_state().key, name)
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
        redirector = self.fleet.redirector
        await redirector.ensure_started(self.hub.base_url)
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

    async def _open_ssh(self, target: SSHTarget, key, deadline: float) -> Connection:
        while True:
            try:
                return await Connection.open(target, key, host_key=self.host_key or None,
                                             timeout=self.ssh_connect_timeout)
            except SSHError as e:
                if "host key" in str(e) or "refused the hub's key" in str(e) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(2)

    async def _connect_proxy(self, info, key):
        target = self._ssh_target(info)
        self.ssh_host, self.ssh_port_used = target.host, target.port
        self._emit("connect", f"Connecting to {info.name} over SSH ({target.host}:{target.port}).")
        try:
            conn = await self._open_ssh(target, key, time.monotonic() + self.ssh_ready_timeout)
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
                conn = await Connection.open(target, await self._connection_key(),
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
            return self.fleet.redirector.url if self.fleet.redirector.port else None
        if self.local_port:
            return self._url()
        return None

    # ---- poll -----------------------------------------------------------

    async def _instance_verdict(self, trouble: bool = False) -> int | None:
        """Is the instance still there for the server? None if it may still be
        serving, 0 if it definitely is not. The reconciler's shared list
        answers "still there" for free; only "gone" is confirmed with a read
        of the instance itself (a definite answer). With ``trouble`` (the
        server did not answer) the list may be at most a poll interval old
        (servers in trouble at the same time share one fresh list), and with
        the reconciler off AML is asked now."""
        project = self._project_from_state()
        try:
            reconciler = await self._reconciler(project)
            if reconciler is not None:
                # the reconciler's own passes keep the list fresh; a poll refreshes it only when they stall
                max_age = min(self.reconcile_interval, self.poll_interval) if trouble else 1.5 * self.reconcile_interval
                snap = await reconciler.snapshot(max_age)
                if snap.taken_at < self._seen_alive_at:
                    return None  # our own sighting is newer than the list
                seen = snap.get(self.instance_name)
                if seen is not None and seen.state in ALIVE_STATES:
                    return None
            elif (not trouble and self.mode != "redirect"
                  and time.monotonic() - self._last_arm_check < self.arm_poll_interval):
                return None
            self._last_arm_check = time.monotonic()
            info = await (await self._client(project)).get(self.instance_name)
        except ComputeError as e:
            self.log.warning("[%s] could not read %s (%s); assuming it still runs", self._log_name, self.instance_name, e)
            return None
        if info is None:
            self.log.warning("[%s] compute instance %s no longer exists", self._log_name, self.instance_name)
            return 0
        if info.state in ALIVE_STATES:
            return None
        self.log.warning("[%s] compute instance %s is %s", self._log_name, self.instance_name, info.state)
        return 0

    async def poll(self):
        if not self.instance_name or not self._server_started:
            return 0
        if self.mode == "redirect":
            verdict = await self._instance_verdict()
            if verdict is None:
                # after a hub restart the endpoint the proxy routes to must exist again
                await self.fleet.redirector.ensure_started(self.hub.base_url)
            return verdict
        try:
            conn = await self._reattach()
            is_alive = await remote.alive(conn, self.pid, self.pid_start)
        except (SSHError, OSError) as e:
            self.log.info("[%s] SSH check of %s failed (%s); asking AML", self._log_name, self.instance_name, e)
            return await self._instance_verdict(trouble=True)
        if is_alive:
            return await self._instance_verdict()
        verdict = await self._instance_verdict(trouble=True)
        if verdict is None:
            # The instance runs, its server does not (shut down from JupyterLab,
            # crashed, killed). JupyterHub will not call stop() for a server
            # that poll() says has ended: bring the instance to rest here.
            self.log.warning("[%s] the Jupyter server on %s has ended", self._log_name, self.instance_name)
            self._settle_in_background("its server ended on its own")
            return 1
        return verdict

    # ---- stop -----------------------------------------------------------

    async def stop(self, now=False):
        await self._stop_server()
        if not self.instance_name:
            return
        name, owner, action = self.instance_name, self.owner, self.stop_action
        if action == "keep":
            self.log.info("[%s] leaving %s running (stop_action=keep)", self._log_name, name)
            return
        key = self.instance_key
        self.fleet.cancel_settling(key)
        try:
            client = await self._client(self._project_from_state())
            async with self.fleet.lock(key):
                self.log.info("[%s] %s compute instance %s", self._log_name,
                              "deleting" if action == "delete" else "stopping", name)
                outcome = await settle_once(client, name, owner, action)
            if outcome in ("deleted", "gone") and action == "delete":
                self.key_store.remove(self._project_from_state().key, name)
        except (ComputeError, SpawnException) as e:
            self.log.warning("[%s] could not %s compute instance %s now (%s); the hub keeps trying in the "
                             "background until AML reports it done", self._log_name, action, name,
                             getattr(e, "message", e))
            self._settle_in_background("its server was stopped")

    def _settle_in_background(self, why: str, action: str | None = None) -> None:
        """Bring the instance to rest per ``action`` (default stop_action),
        retried until AML confirms; the fleet holds the task."""
        action = action or self.stop_action
        if action == "keep" or not self.instance_name:
            return
        project, name = self._project_from_state(), self.instance_name
        store = self.key_store
        self.fleet.settle(
            instance_key(project.key, name), lambda: self._client(project), name, self.owner, action,
            f"{self._log_name}: {why}", retry_delay=self.wait_interval,
            on_deleted=(lambda: store.remove(project.key, name)) if action == "delete" else None,
        )

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

    # ---- rename and removal -----------------------------------------------

    async def rename(self, old_name, new_name):
        """Keep the instance across the rename: record it (and whose it is)
        in the state, which moves with the server."""
        if not self.instance_name:
            # version 0.1 forgot a stopped server's instance: look for it while the old name still maps to it
            project = self._projects()[0]
            owner = self._owner_now()
            try:
                client = await self._client(project)
                name = self._name_for(project)
                info = await client.get(name)
                if info is not None and ownership.verdict(info.tags, owner) == ownership.MINE:
                    found = (name, info)
                else:
                    found = await self._find_legacy_instance(client, owner)
            except (ComputeError, SpawnException) as e:
                raise web.HTTPError(503, f"Cannot rename now: the hub could not look up the server's compute "
                                         f"instance ({getattr(e, 'message', e)}). Try again later.") from None
            if found is None:
                return
            self.instance_name = found[0]
            self.workspace = _workspace_record(project)
            self.owner_record = owner.to_state()
        if not self.owner_record:
            self.owner_record = self._owner_now().to_state()
        self.orm_spawner.state = self.get_state()
        self.log.info("[%s] renamed to %r; it keeps compute instance %s", self._log_name, new_name, self.instance_name)

    async def delete_forever(self):
        """The server (or its user) is removed from the hub."""
        name = self.instance_name or self._name_for(self._projects()[0])
        if self.delete_forever_action != "delete":
            self.log.info("[%s] removed from the hub; its compute instance %s (if any) and its disk are kept "
                          "(delete_forever_action=keep): delete it in Azure ML studio when it is no longer needed",
                          self._log_name, name)
            return
        if not self.instance_name:
            self.instance_name = name
            project = self._projects()[0]
            self.workspace = _workspace_record(project)
        self._settle_in_background("it was removed from the hub (delete_forever_action=delete)", action="delete")

    # ---- progress -------------------------------------------------------

    async def progress(self):
        async for event in self._progress.stream():
            yield event


def start_reconcilers_with_hub(hub_started_timeout: float = 300) -> None:
    """From jupyterhub_config.py: once the hub has started, start the
    reconciler of every configured workspace, so instances left running are
    found even when no server is running to start one.

    It waits for the hub to have found its running servers first (JupyterHub
    loads them after reading its config); a reconciler that looked earlier
    would see their instances as having no server.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # not inside a starting hub (e.g. jupyterhub --generate-config)

    async def boot():
        from jupyterhub.app import JupyterHub

        app = JupyterHub.instance()
        deadline = time.monotonic() + hub_started_timeout
        while time.monotonic() < deadline:
            started = getattr(app, "_start_future", None)  # resolved when JupyterHub.start() is done
            if started is not None and started.done():
                break
            await asyncio.sleep(0.5)
        if not issubclass(app.spawner_class, AMLSpawner):
            return
        try:
            await app.spawner_class(parent=app).start_reconcilers()
        except Exception:
            app.log.exception("could not start the AML reconcilers; they start with the first server instead")

    fleet_module.shared().run_in_background(boot())


def _workspace_record(project: Project) -> dict:
    """What the state keeps of a workspace."""
    return {"subscription_id": project.subscription_id, "resource_group": project.resource_group,
            "workspace_name": project.workspace_name}

