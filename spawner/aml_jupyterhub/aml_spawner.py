"""AMLSpawner: each user's (and each named server's) notebook server on their
own Azure Machine Learning compute instance.

    c.JupyterHub.spawner_class = "aml"

The flow is one way: options (``profiles``: the form and the choice) ->
profile -> instance spec (``builders``) -> AML calls (``compute``, through the
fleet's clients) -> a running instance -> connection (``connectors``: proxy
over SSH, or redirect to AML's JupyterLab) -> URL. This class holds the
Spawner methods and orchestrates; its settings are in ``config``, what it
remembers in ``state``, and what every server of the hub shares (instance
locks, clients, the reconciler, background settling) in ``fleet``.

An instance is this server's only when its tags say so (``ownership``); it
is remembered in the server's state across stops (and renames), so the
server always comes back to its own disk; and whenever a server ends (stop,
crash, failed start) its instance is brought to rest per ``stop_action``,
retried in the background until AML confirms.
"""

from __future__ import annotations

import asyncio
import time

from markupsafe import escape
from jupyterhub.spawner import SpawnException, Spawner
from tornado import web
from traitlets import default

from . import builders, limits, metrics, naming, ownership
from . import fleet as fleet_module
from .clients import compute_client
from .compute import ComputeClient, ComputeError, ForeignInstance, InstanceFailed, InstanceSpec
from .config import AMLSettings
from .connectors import CONNECTORS
from .errors import spawn_error
from .fleet import instance_key, settle_once
from .keys import KeyStore
from .form import render_form
from .prices import load_table, with_prices
from .profiles import OptionsError, Project, choose, menu_for, parse_profiles, parse_projects
from .progress import ProgressLog, fmt_elapsed, fraction_done, time_left
from .reconciler import Reconciler, suspects_path
from .ssh import SSHError
from .state import ServerState
from .tunnels import tunnel_name

__all__ = ["AMLSpawner", "announcement_for", "spawn_error", "start_reconcilers_with_hub"]

ALIVE_STATES = frozenset({"Running", "Starting", "Restarting", "Creating", "SettingUp"})


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
        self.server_state = ServerState()
        self.fleet = fleet_module.shared(self.log)
        self.fleet.spawners.add(self)
        self._connectors: dict = {}  # mode -> its connector (what lives in this process: SSH connections)
        self._progress = ProgressLog()
        self._last_arm_check = 0.0
        self._seen_alive_at = 0.0  # when this spawner last saw the instance alive itself (monotonic)
        self._admitted_size = ""  # the size this start was admitted with by the limits (counted while active)
        self._runtime_ended = False  # the runtime limit ended this run

    def get_state(self):
        return {**super().get_state(), **self.server_state.to_dict()}

    def load_state(self, state):
        super().load_state(state)
        self.server_state = ServerState.from_dict(state, default_mode=self.connect_mode)

    def clear_state(self):
        """After a stop: forget the run, remember the instance."""
        super().clear_state()
        self.server_state.forget_run()
        self._admitted_size = ""

    @property
    def connector(self):
        """The connector of this run's mode (of the configured one before a run)."""
        mode = self.server_state.mode or self.connect_mode
        if mode not in self._connectors:
            self._connectors[mode] = CONNECTORS[mode](self)
        return self._connectors[mode]

    # ---- internal TLS ---------------------------------------------------

    async def create_certs(self):
        """With internal TLS, JupyterHub asks for the server's certificate
        before start(); its address is not known then. The connector makes it
        once the instance runs (``servertls``) and sets ``cert_paths``."""
        return {}

    async def move_certs(self, paths):
        return {}

    # ---- helpers --------------------------------------------------------

    @property
    def server_prefix(self) -> str:
        return self.server.base_url if self.server else f"/user/{self.user.name}/{self.name}"

    @property
    def owner(self) -> ownership.Owner:
        """Whose instance this server uses: recorded with the instance, else this server."""
        return ownership.Owner.from_state(self.server_state.owner) or self._owner_now()

    def _owner_now(self) -> ownership.Owner:
        return ownership.Owner(self.hub_id, self.user.name, self.name or "")

    @property
    def instance_key(self):
        if not self.server_state.instance_name:
            return None
        return instance_key(self.project_from_state().key, self.server_state.instance_name)

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

    def project_from_state(self) -> Project:
        ws = self.server_state.workspace
        if ws:
            return Project("state", ws.get("workspace_name", ""), ws["subscription_id"], ws["resource_group"], ws["workspace_name"])
        return self._projects()[0]

    async def _client(self, project: Project) -> ComputeClient:
        if self.compute_client_factory is not None:
            return self.compute_client_factory(self, project)
        return await compute_client(self.fleet, self, project, self.log)

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
                suspects_file=suspects_path(self.reconciler_state_dir, project.key),
            )

        return self.fleet.reconciler(project.key, make)

    async def start_reconcilers(self) -> None:
        """At hub start: make (or read) the hub's id, and start the reconciler
        of every configured workspace."""
        self.log.info("AML spawner: hub id %s, reconcile_interval %s s", self.hub_id, self.reconcile_interval)
        for project in self._projects():
            if all(project.key):
                await self._reconciler(project)

    async def close_orphan_tunnels(self, servers_in_use) -> list[str]:
        """At hub start: close the tunnels in the tunnel service that no server
        of this hub uses (a hub that died between a server's stop and closing
        its tunnel leaves one, retried by the service forever). The tunnel
        service is this hub's alone. ``servers_in_use()``: (user, server) of
        the servers that run or start, read after the service's list, so a
        spawn that opens its tunnel meanwhile is never swept."""
        if not self.tunnel_service_url:
            return []
        client = self.fleet.tunnel_client(self.tunnel_service_url, self.tunnel_service_token)
        try:
            open_now = await client.list()
            in_use = {tunnel_name(user, server) for user, server in servers_in_use()}
            closed = []
            for name in sorted(set(open_now) - in_use):
                self.log.warning("closing tunnel %s in the tunnel service: no server of this hub uses it", name)
                await client.close(name)
                closed.append(name)
            return closed
        except SSHError as e:
            self.log.warning("could not look for tunnels without a server: %s", e)
            return []

    async def _offered_sizes(self, project: Project):
        key = (*project.key, self.arm_endpoint)
        cached = self.fleet.sizes.get(key)
        if cached and time.monotonic() - cached[0] < self.sizes_cache_seconds:
            return cached[1]
        client = await self._client(project)
        try:
            # the region once (the price table is per region); then each list is one read
            region = await client.location()
            sizes = await client.list_sizes(region)
        except ComputeError as e:
            self.log.warning("could not list VM sizes for %s (showing every profile): %s", project.workspace_name, e)
            return None
        offered = with_prices({s.name.lower(): s for s in sizes}, region, load_table(self.price_table_file or None))
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

    def emit(self, phase: str, message: str, **kw) -> None:
        event = self._progress.emit(phase, message, **kw)
        self.log.info("[%s] %s%% %s", self._log_name, event["progress"], message)

    async def _on_progress(self, p) -> None:
        state = p.state or {"create": "Creating", "start": "Starting"}.get(p.operation, p.operation)
        pct = p.percent if p.percent is not None and p.percent < 100 else None
        phase = p.operation if p.operation in ("create", "start", "delete", "stop", "resize") else "wait"
        detail = f" ({p.status})" if p.status and p.status not in ("InProgress", "Succeeded") else ""
        name = self.server_state.instance_name
        if p.percent == 100:  # the operation ended: what it did, not the state it was in
            done = {"create": "created", "start": "started", "stop": "stopped", "delete": "deleted",
                    "resize": "resized", "restart": "restarted"}.get(p.operation, f"{p.operation} done")
            self.emit(phase, f"Compute instance {name} {done}{detail} in {fmt_elapsed(p.elapsed)}.", fraction=1.0)
            return
        eta = time_left(p.elapsed, p.expected, p.basis) if p.expected else ""
        fraction = pct / 100 if pct else fraction_done(p.elapsed, p.expected) if p.expected else None
        self.emit(
            phase,
            f"Compute instance {name} is {state}{detail}, {fmt_elapsed(p.elapsed)} elapsed{eta}.",
            fraction=fraction,
            elapsed=p.elapsed,
        )

    # ---- the options form -----------------------------------------------

    async def get_options_form(self):
        if self.options_form:
            return await super().get_options_form()
        menu = await self._menu()
        if len(menu.profiles) <= 1 and len(menu.projects) <= 1:
            return ""  # one choice: no question
        existing = await self._existing_instance(menu)
        return render_form(menu, self.show_prices, self.user_options or {}, self.options_form_template,
                           existing=existing, resize=self.resize_instances)

    async def _existing_instance(self, menu):
        """The instance this server would start on, for the form to say (None if there is none yet,
        or it cannot be read now: the form then says nothing of it)."""
        remembered = bool(self.server_state.instance_name)
        project = self.project_from_state() if remembered else (menu.projects or self._projects())[0]
        name = self.server_state.instance_name or self._name_for(project)
        owner = self.owner if remembered else self._owner_now()
        try:
            info = await (await self._client(project)).get(name)
        except (ComputeError, SpawnException):
            return None
        if info is None or ownership.verdict(info.tags, owner, allow_legacy=remembered) == ownership.FOREIGN:
            return None
        return info

    def options_from_form(self, formdata):
        return {k: formdata[k][0] for k in ("profile", "project") if formdata.get(k) and formdata[k][0]}

    # ---- start ----------------------------------------------------------

    async def start(self):
        self._progress = ProgressLog()
        self._touched = False  # set once the instance may have been created or started
        self._admitted_size, self._runtime_ended = "", False
        self.fleet.notices.pop((self.user.name, self.name or ""), None)
        never_ran = not self.server_state.instance_name  # an instance is remembered from a server's first run on
        requester = self.handler  # the request that asked for this start (JupyterHub forgets it when start ends)
        # Our own deadline, just inside the hub's start_timeout, so the user
        # reads what was still going on instead of an empty "Spawn failed".
        budget = self.start_timeout - min(5.0, self.start_timeout * 0.1)
        try:
            url = await asyncio.wait_for(self._start(), budget)
            metrics.observe_phases(self._progress.phase_durations())
            return url
        except asyncio.TimeoutError:
            metrics.SPAWN_FAILURES.labels("timeout").inc()
            self._after_failed_start()
            last = self._progress.events[-1]["message"] if self._progress.events else ""
            raise spawn_error(
                f"Your server was not ready within {fmt_elapsed(budget)} (start_timeout). Last step: {last} "
                "The instance will be stopped; try again later, or ask an admin to raise start_timeout.",
                reason="timeout",
                status_code=500,
            ) from None
        except BaseException as e:
            metrics.SPAWN_FAILURES.labels(getattr(e, "reason", None) or type(e).__name__).inc()
            self._after_failed_start()
            if never_ran and not self._touched and isinstance(e, SpawnException) and e.status_code < 500:
                self._forget_when_refused(requester)
            raise
        finally:
            self._progress.finish()

    def _after_failed_start(self) -> None:
        """No server: nothing may keep running. Stop what the start launched and
        settle the instance per stop_action, in a task of its own (this one
        may be being cancelled)."""
        if not self._touched:
            return
        ended = self.connector.abandon()  # poll() now says "not running": the hub will not call stop()

        async def clean_up():
            await ended
            self._settle_in_background("its start failed")

        self.fleet.run_in_background(clean_up())

    def _forget_when_refused(self, requester) -> None:
        """A named server that never ran, refused before anything was made for
        it: once the hub has finished with the failed spawn, the server record
        goes, as the hub's own removal of a named server does, so a refused
        choice leaves nothing. Only while the request that asked for the start
        still waits, so its answer (the REST 400, the form) carries the refusal;
        one already answered "pending" (202, the progress page) left its user
        to read the refusal from the server's progress, which needs the record.
        Not through delete_forever: that may delete an instance of the
        server's name, and a refusal may be that it is somebody else's."""
        spawn = self._spawn_future
        if not self.name or spawn is None:
            return  # the default server always stays

        def forget(done) -> None:
            user, orm = self.user, self.orm_spawner
            # Nothing is awaited from the checks to the commit, so no new spawn,
            # rename or removal of this server can slip in between.
            if (getattr(requester, "_finished", True) or self._spawn_future is not done or self.active or
                    orm is None or user.spawners.get(self.name) is not self or
                    user.orm_spawners.get(self.name) is not orm or
                    ServerState.from_dict(orm.state or {}).instance_name):
                return
            self.log.info("[%s] removed: its first start was refused, and nothing was made for it", self._log_name)
            user.db.delete(orm)
            user.spawners.pop(self.name, None)
            user.db.commit()
            self.fleet.spawners.discard(self)

        spawn.add_done_callback(forget)

    async def _start(self):
        self.emit("prepare", "Checking your options.")
        self.connector.check_settings()
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
        self._admit(profile, menu)
        self._set_runtime_limit(profile)
        size = menu.sizes.get(profile.vm_size.lower())
        if self.show_prices and size is not None and size.price_per_hour is not None:
            self.emit("prepare", f"{profile.display_name} ({profile.vm_size}) costs about "
                      f"${size.price_per_hour:.2f} an hour while it runs.")

        client = await self._client(project)
        await self._reconciler(project)
        # which instance (reads only); then nothing else acts on it while this start does
        name, owner, info, allow_legacy = await self._resolve_instance(client, project)
        key = instance_key(project.key, name)
        was_settling = self.fleet.cancel_settling(key)
        async with self.fleet.lock(key):
            if was_settling:  # a stop or delete was at work on it: read it as it is now
                info = await self._read_owned(client, name, owner, allow_legacy=allow_legacy)
            state = self.server_state
            state.instance_name, state.workspace, state.owner = name, _workspace_record(project), owner.to_state()
            state.mode, state.vm_size, state.profile = self.connect_mode, profile.vm_size, profile.slug
            connector = self.connector  # of this run's mode
            self._touched = True
            creating = info is None or info.state in ("CreateFailed", "Deleting")
            if not creating and not _same_size(info.vm_size, profile.vm_size):
                info = await self._change_size(client, info, profile, menu)
            access = await connector.access(project, name, creating=creating)
            spec = self._spec(name, profile, owner, access)
            info = await self._ensure_instance(client, spec, info, owner, allow_legacy=allow_legacy and not creating)
            state.resource_id = info.id or ""
            # what runs, never only what was asked for
            state.vm_size = info.vm_size or profile.vm_size
            state.profile = profile.slug if _same_size(state.vm_size, profile.vm_size) else next(
                (p.slug for p in parse_profiles(self.profiles) if _same_size(p.vm_size, state.vm_size)), "")
            self._record_profile(state.profile)
            url = await connector.connect(info)
        # just seen Running and serving: the first polls need not ask AML
        self._seen_alive_at = self._last_arm_check = time.monotonic()
        return url

    # ---- limits on spend ---------------------------------------------------

    def _others_running(self) -> list["AMLSpawner"]:
        """The hub's other servers that run, or were admitted to start (one
        not yet admitted counts this one when it is: two starts racing for the
        last place cannot both pass)."""
        return [sp for sp in list(self.fleet.spawners)
                if sp is not self and _current(sp) and sp.active and (sp.ready or sp._admitted_size)]

    def _admit(self, profile, menu) -> None:
        """Refuse the start if it would go beyond a limit, else count it. No
        await between the count and the record: starts are admitted one by one."""
        others = self._others_running()
        mine = [sp.name or "" for sp in others if sp.user.name == self.user.name]
        refusal = limits.user_servers_refusal(mine, self.max_running_servers_per_user)
        if refusal is None and self.group_vcpu_limits:
            size = menu.sizes.get(profile.vm_size.lower())
            running = [limits.Running(sp.user.name, sp.name or "", frozenset(sp._user_groups()),
                                      self.fleet.vcpus(sp.server_state.vm_size or sp._admitted_size)) for sp in others]
            names = getattr(self.authenticator, "group_display_names", None) or {}
            refusal = limits.group_vcpus_refusal(
                self._user_groups(), f"{profile.display_name} ({profile.vm_size})", size.vcpus if size else None,
                running, self.group_vcpu_limits, names)
        if refusal:
            self.log.info("[%s] start refused by a limit: %s", self._log_name, refusal)
            raise spawn_error(refusal, reason="limit", status_code=403)
        self._admitted_size = profile.vm_size

    def _set_runtime_limit(self, profile) -> None:
        state = self.server_state
        hours = limits.runtime_hours(profile.max_hours, self.max_runtime_hours)
        state.stop_at = int(time.time() + hours * 3600) if hours else 0
        state.stop_rule = limits.runtime_rule(hours, profile.display_name if profile.max_hours is not None else "")
        if hours:
            self.emit("prepare", f"This server will be stopped at {limits.clock(state.stop_at)}, whatever its "
                      f"activity: {state.stop_rule}.")

    def runtime_notice(self, now: float) -> str:
        """The warning this server's user reads on hub pages, or ""."""
        state = self.server_state
        if not (self.active and state.stop_at) or now < state.stop_at - self.runtime_warning_minutes * 60:
            return ""
        return limits.stop_warning(self.name or "", max(now, state.stop_at), now, state.stop_rule)

    async def _end_at_runtime_limit(self) -> None:
        """The runtime limit is reached: end the server and bring its instance
        to rest (poll() then says it has ended, so the hub will not call stop())."""
        if self._runtime_ended:
            return
        self._runtime_ended = True
        rule = self.server_state.stop_rule
        self.log.warning("[%s] stopping: it reached %s", self._log_name, rule)
        self.fleet.notices[(self.user.name, self.name or "")] = limits.stopped_notice(self.name or "", rule)
        try:
            await self.connector.stop_server()
        finally:  # whatever ending the process did, the instance is brought to rest: it must not bill on
            self._settle_in_background(f"it reached {rule}")

    def _record_profile(self, slug: str) -> None:
        """The options the hub shows for this server (its admin page's Profile) name what runs."""
        options = {k: v for k, v in (self.user_options or {}).items() if k != "profile"}
        if slug:
            options["profile"] = slug
        if options != (self.user_options or {}):
            self.user_options = options
            if self.orm_spawner is not None:
                self.orm_spawner.user_options = options  # saved with the server, as JupyterHub saves them

    async def _change_size(self, client: ComputeClient, info, profile, menu):
        """The server's existing instance, at the size the user picked: resized
        (stopped first if it runs; AML keeps its disk), or, with resizing off,
        refused with the one size it has."""
        name, current = info.name, info.vm_size
        if not self.resize_instances:
            own = [p for p in menu.profiles if _same_size(p.vm_size, current)]
            if own:
                raise spawn_error(
                    f"Your compute instance {name} has size {current} ({own[0].display_name}), and this hub does not "
                    f"resize instances: choose {own[0].display_name} to start it with your files, or ask an admin "
                    f"to delete it so that you get a new one of size {profile.vm_size}.",
                    reason="size_kept",
                )
            self.emit("prepare", f"Your compute instance {name} keeps its size {current} (this hub does not "
                      "resize instances).")
            return info
        try:
            if info.is_transient:
                info = await client.wait_for_state(name, {"Running", "Stopped"}, self._on_progress)
            if info.is_running:
                self.emit("stop", f"Compute instance {name} is running; stopping it to resize it to "
                          f"{profile.vm_size} (your files are kept).")
                await client.stop(name, self._on_progress)
            self.emit("resize", f"Resizing compute instance {name} from {current} to {profile.vm_size} "
                      "(your disk and files are kept).")
            await client.resize(name, profile.vm_size, self._on_progress)
            resized = await client.get(name)
        except ComputeError as e:
            raise spawn_error(f"Could not resize your compute instance {name} to {profile.vm_size}: {e.message} "
                              f"It keeps its size {current}: pick that size to start it as it is.",
                              reason="resize_failed", status_code=500) from None
        if resized is None:
            raise spawn_error(f"Compute instance {name} disappeared while being resized. Start again for a new one.",
                              reason="instance_gone", status_code=500)
        return resized

    async def _resolve_instance(self, client, project: Project):
        """(name, owner, info or None, allow_legacy) of the instance this start
        uses: the remembered one while it exists, else this server's own name
        (or the instance version 0.1 made for it). Somebody else's instance
        under either name is refused here, before anything is done."""
        name, owner, remembered = self._target_instance(project)
        if not remembered:
            self._refuse_if_another_server_has(name)
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

    def _refuse_if_another_server_has(self, name: str) -> None:
        """A server renamed keeps its instance (its state records it), while the
        instance's name and tags still say the old server name: a new server of
        that old name would map onto it. Refused, before anything is touched."""
        other = next((server or "default" for server, orm in self._orm_spawners().items()
                      if server != (self.name or "") and
                      (ServerState.from_dict(orm.state or {}).instance_name or "").lower() == name.lower()), None)
        if other is None:
            return
        self.log.warning("[%s] compute instance %s is recorded by %s's server %r: not used for this one",
                         self._log_name, name, self.user.name, other)
        raise spawn_error(
            f"Compute instance {name}, which a server named {self.name or 'default'!r} would use, belongs to your "
            f"server {other!r} (renamed since it was made). Choose another name for this server; {other!r} keeps "
            "its instance and files.",
            reason="instance_of_another_server", status_code=409)

    def _orm_spawners(self) -> dict:
        """The user's servers as the hub's database records them (name -> orm Spawner)."""
        orm_user = getattr(self.user, "orm_user", None)
        return dict(getattr(orm_user, "orm_spawners", None) or {})

    def _target_instance(self, project: Project) -> tuple[str, ownership.Owner, bool]:
        """The instance to use: the one this server remembers (its name and
        owner as recorded, which survive a rename) when in the same workspace,
        else the name this server maps to. The bool says it is remembered."""
        if self.server_state.instance_name and self.project_from_state().key == project.key:
            return self.server_state.instance_name, self.owner, True
        if self.server_state.instance_name:
            self.log.warning("[%s] now in workspace %s; its instance %s in %s is left as it is", self._log_name,
                             project.workspace_name, self.server_state.instance_name, self.project_from_state().workspace_name)
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

    def _spec(self, name: str, profile, owner: ownership.Owner, access: dict) -> InstanceSpec:
        return builders.instance_spec(
            name=name, vm_size=profile.vm_size, tags=self.tags, owner_tags=owner.tags(),
            mode=self.connector.mode, idle=self.idle_shutdown_minutes, subnet_id=self.subnet_id,
            enable_public_ip=self.enable_public_ip, setup_script=self.setup_script,
            setup_script_args=self.setup_script_args, user_name=self.user.name, server_name=self.name or "",
            access=access, stop_cron=self.stop_schedule, stop_time_zone=self.stop_schedule_time_zone,
        )

    async def _ensure_instance(self, client: ComputeClient, spec: InstanceSpec, info, owner, *, allow_legacy: bool):
        name = spec.name
        started = time.monotonic()

        def accept(found) -> bool:
            return ownership.verdict(found.tags, owner, allow_legacy=allow_legacy) != ownership.FOREIGN

        try:
            if info is None:
                self.emit("create", f"Creating compute instance {name} ({spec.vm_size}).")
            elif info.is_failed and info.state == "CreateFailed":
                # It never ran and holds no data; AML cannot start it, only replace it.
                self.emit("delete", f"Compute instance {name} failed to create earlier; removing it to try again.")
                await client.delete(name, self._on_progress)
                info = None
            elif info.is_running:
                self.emit("start", f"Compute instance {name} is already running.", fraction=1.0)
            else:
                self.emit("start", f"Compute instance {name} is {info.state}; starting it.")
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
                    self.key_store.remove(self.project_from_state().key, name)
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
        self.emit("connect", f"Compute instance {name} is Running ({how}, {fmt_elapsed(time.monotonic() - started)}).",
                   fraction=0.0)
        return info

    async def _safe_get(self, client, name):
        try:
            return await client.get(name)
        except ComputeError:
            return None

    async def get_url(self):
        return self.connector.url()

    # ---- poll -----------------------------------------------------------

    async def _instance_verdict(self, trouble: bool = False) -> int | None:
        """Is the instance still there for the server? None if it may still be
        serving, 0 if it definitely is not. The reconciler's shared list
        answers "still there" for free; only "gone" is confirmed with a read
        of the instance itself (a definite answer). With ``trouble`` (the
        server did not answer) the list may be at most a poll interval old
        (servers in trouble at the same time share one fresh list), and with
        the reconciler off AML is asked now."""
        project = self.project_from_state()
        try:
            reconciler = await self._reconciler(project)
            if reconciler is not None:
                # the reconciler's own passes keep the list fresh; a poll refreshes it only when they stall
                max_age = min(self.reconcile_interval, self.poll_interval) if trouble else 1.5 * self.reconcile_interval
                snap = await reconciler.snapshot(max_age)
                if snap.taken_at < self._seen_alive_at:
                    return None  # our own sighting is newer than the list
                seen = snap.get(self.server_state.instance_name)
                if seen is not None and seen.state in ALIVE_STATES:
                    return None
            elif (not trouble and self.connector.checks_the_server
                  and time.monotonic() - self._last_arm_check < self.arm_poll_interval):
                return None
            self._last_arm_check = time.monotonic()
            info = await (await self._client(project)).get(self.server_state.instance_name)
        except ComputeError as e:
            self.log.warning("[%s] could not read %s (%s); assuming it still runs", self._log_name, self.server_state.instance_name, e)
            return None
        if info is None:
            self.log.warning("[%s] compute instance %s no longer exists", self._log_name, self.server_state.instance_name)
            return 0
        if info.state in ALIVE_STATES:
            return None
        self.log.warning("[%s] compute instance %s is %s", self._log_name, self.server_state.instance_name, info.state)
        return 0

    async def poll(self):
        state = self.server_state
        if not state.instance_name or not state.started:
            return 0
        if state.stop_at and time.time() >= state.stop_at:
            await self._end_at_runtime_limit()
            return 0
        alive = await self.connector.server_alive()
        if alive is None:  # cannot tell (SSH failed): AML says whether the instance is still there
            return await self._instance_verdict(trouble=True)
        if alive:
            return await self._instance_verdict()
        verdict = await self._instance_verdict(trouble=True)
        if verdict is None:
            # The instance runs, its server does not (shut down from JupyterLab,
            # crashed, killed). JupyterHub will not call stop() for a server
            # that poll() says has ended: bring the instance to rest here.
            self.log.warning("[%s] the Jupyter server on %s has ended", self._log_name, state.instance_name)
            self._settle_in_background("its server ended on its own")
            return 1
        return verdict

    # ---- stop -----------------------------------------------------------

    async def stop(self, now=False):
        await self.connector.stop_server()
        if not self.server_state.instance_name:
            return
        name, owner, action = self.server_state.instance_name, self.owner, self.stop_action
        if action == "keep":
            self.log.info("[%s] leaving %s running (stop_action=keep)", self._log_name, name)
            return
        key = self.instance_key
        self.fleet.cancel_settling(key)
        try:
            client = await self._client(self.project_from_state())
            async with self.fleet.lock(key):
                self.log.info("[%s] %s compute instance %s", self._log_name,
                              "deleting" if action == "delete" else "stopping", name)
                outcome = await settle_once(client, name, owner, action)
            if outcome in ("deleted", "gone") and action == "delete":
                self.key_store.remove(self.project_from_state().key, name)
        except (ComputeError, SpawnException) as e:
            self.log.warning("[%s] could not %s compute instance %s now (%s); the hub keeps trying in the "
                             "background until AML reports it done", self._log_name, action, name,
                             getattr(e, "message", e))
            self._settle_in_background("its server was stopped")

    def _settle_in_background(self, why: str, action: str | None = None) -> None:
        """Bring the instance to rest per ``action`` (default stop_action),
        retried until AML confirms; the fleet holds the task."""
        action = action or self.stop_action
        if action == "keep" or not self.server_state.instance_name:
            return
        project, name = self.project_from_state(), self.server_state.instance_name
        store = self.key_store
        self.fleet.settle(
            instance_key(project.key, name), lambda: self._client(project), name, self.owner, action,
            f"{self._log_name}: {why}", retry_delay=self.wait_interval,
            on_deleted=(lambda: store.remove(project.key, name)) if action == "delete" else None,
        )

    # ---- rename and removal -----------------------------------------------

    async def rename(self, old_name, new_name):
        """Keep the instance across the rename: record it (and whose it is)
        in the state, which moves with the server."""
        if not self.server_state.instance_name:
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
            self.server_state.instance_name = found[0]
            self.server_state.workspace = _workspace_record(project)
            self.server_state.owner = owner.to_state()
        if not self.server_state.owner:
            self.server_state.owner = self._owner_now().to_state()
        self.orm_spawner.state = self.get_state()
        self.log.info("[%s] renamed to %r; it keeps compute instance %s", self._log_name, new_name, self.server_state.instance_name)

    async def delete_forever(self):
        """The server (or its user) is removed from the hub."""
        name = self.server_state.instance_name or self._name_for(self._projects()[0])
        if self.delete_forever_action != "delete":
            self.log.info("[%s] removed from the hub; its compute instance %s (if any) and its disk are kept "
                          "(delete_forever_action=keep): delete it in Azure ML studio when it is no longer needed",
                          self._log_name, name)
            return
        if not self.server_state.instance_name:
            try:
                self._refuse_if_another_server_has(name)
            except SpawnException:
                self.log.warning("[%s] removed from the hub; compute instance %s is another server's: not deleted",
                                 self._log_name, name)
                return
            self.server_state.instance_name = name
            project = self._projects()[0]
            self.server_state.workspace = _workspace_record(project)
        self._settle_in_background("it was removed from the hub (delete_forever_action=delete)", action="delete")

    # ---- progress -------------------------------------------------------

    async def progress(self):
        async for event in self._progress.stream():
            yield event


def _current(sp: AMLSpawner) -> bool:
    """Whether ``sp`` is its server's spawner now. JupyterHub keeps the object
    of a failed start (for its error) and makes another for the next one;
    both see the server's database row, so the old one would look ready."""
    user = getattr(sp, "user", None)
    return user is not None and sp.orm_spawner is not None and getattr(user, "spawners", {}).get(sp.name or "") is sp


def _same_size(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


def start_reconcilers_with_hub(hub_started_timeout: float = 300) -> None:
    """From jupyterhub_config.py: once the hub has started, start the
    reconciler of every configured workspace, so instances left running are
    found even when no server is running to start one, and close tunnels no
    server uses.

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
        spawner = app.spawner_class(parent=app)
        try:
            await spawner.start_reconcilers()
        except Exception:
            app.log.exception("could not start the AML reconcilers; they start with the first server instead")

        def servers_in_use():
            return [(user.name, sp.name or "") for user in list(app.users.values())
                    for sp in list(user.spawners.values()) if sp.active]

        await spawner.close_orphan_tunnels(servers_in_use)

    fleet_module.shared().run_in_background(boot())


def announcement_for(user) -> str:
    """The announcement on a user's hub pages (``c.JupyterHub.template_vars``
    calls it with the page's user): a warning for each of their servers the
    runtime limit stops soon, and why the hub stopped one. Escaped HTML (the
    page shows it as markup); empty, hence hidden, when there is nothing to say."""
    if user is None:
        return ""
    now = time.time()
    lines = [sp.runtime_notice(now) for _, sp in sorted(getattr(user, "spawners", {}).items())
             if isinstance(sp, AMLSpawner)]
    lines += [text for (name, _), text in sorted(fleet_module.shared().notices.items()) if name == user.name]
    return "<br>".join(str(escape(line)) for line in lines if line)


def _workspace_record(project: Project) -> dict:
    """What the state keeps of a workspace."""
    return {"subscription_id": project.subscription_id, "resource_group": project.resource_group,
            "workspace_name": project.workspace_name}

