"""The emulated AML control plane: workspaces, compute instances, operations.

Like moto's models, this knows nothing of HTTP: it holds the state, the
quota accounting and each instance's state machine, and calls the runtime at
the edges. What AML refuses is decided in ``rules`` (pure checks raising
:class:`ArmError`), which the backend asks before it changes anything; how
ARM spells a model is ``render``'s business.

    PUT     Creating -> (SettingUp) -> Running      | CreateFailed
    stop    Stopping -> Stopped
    start   Starting -> Running                      | Stopped + StartFailed
    restart Restarting -> Running
    DELETE  Deleting -> gone (404)

Each transition takes the configured number of seconds; its asynchronous
operation (the ``Azure-AsyncOperation`` resource) reports InProgress until it
ends. Transition deadlines are wall-clock times kept in the store, so an
emulator restart resumes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

from . import catalog, rules
from .clock import Clock
from .idle import after_setting_change
from .errors import ArmError, not_found
from .faults import FaultPlan
from .runtime.base import InstanceRuntime, Lab, RuntimeFailure, RuntimeInstance
from .store import JsonStore

log = logging.getLogger("aml_emulator")

PROVIDER = "Microsoft.MachineLearningServices"
TRANSITION_KINDS = ("create", "setup", "start", "stop", "restart", "delete")
DEFAULT_TRANSITIONS = {"create": 3.0, "setup": 1.0, "start": 2.0, "stop": 1.0, "restart": 2.0, "delete": 1.0,
                       "resize": 1.0}
# Real Azure ML (recorded traffic and the docs: a create 3-5 min, a start about
# 2 min, a stop about 1 min), for benches and for trying the spawner's
# behaviour on real timings (with a time scale).
AZURE_TRANSITIONS = {"create": 240.0, "setup": 60.0, "start": 120.0, "stop": 60.0, "restart": 150.0,
                     "delete": 60.0, "resize": 120.0}
TIMING_PROFILES = {"fast": DEFAULT_TRANSITIONS, "azure": AZURE_TRANSITIONS}
OP_NAMES = {"create": "Create", "start": "Start", "stop": "Stop", "restart": "Restart", "delete": "Delete",
            "resize": "Resize"}
IN_FLIGHT_STATES = {"Creating", "SettingUp", "Starting", "Stopping", "Restarting", "Resizing", "Deleting"}
ACTION_STATES = {"start": "Starting", "stop": "Stopping", "restart": "Restarting"}  # while the action runs


def utcnow_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _identity_as_answered(identity, ws: "Workspace", name: str, tenant_id: str | None):
    """A PUT's ``identity`` as AML keeps it: a system-assigned identity gets its
    principal (a stable object id here) and tenant, as recorded traffic shows
    in the 201 and every GET ({"type": "SystemAssigned", "principalId", "tenantId"})."""
    if not isinstance(identity, dict):
        return identity
    out = dict(identity)
    if "systemassigned" in str(out.get("type", "")).replace(" ", "").lower():
        out.setdefault("principalId", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ws.arm_id}/computes/{name.lower()}")))
        if tenant_id:
            out.setdefault("tenantId", tenant_id)
    return out


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    name: str
    location: str

    @property
    def key(self) -> tuple:
        return (self.subscription_id.lower(), self.resource_group.lower(), self.name.lower())

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.name}"
        )


@dataclass
class Operation:
    id: str
    kind: str
    compute_id: str
    location: str
    subscription_id: str
    started: float
    duration: float
    status: str = "InProgress"
    ended: float | None = None
    error: dict | None = None


@dataclass
class Instance:
    workspace: tuple
    location: str
    name: str
    vm_size: str
    created_on: str
    tags: dict = field(default_factory=dict)
    description: str | None = None
    ssh_public_access: bool = False
    admin_public_key: str | None = None
    assigned_user: dict | None = None
    idle_minutes: int | None = None
    subnet_id: str | None = None
    enable_node_public_ip: bool = True
    enable_sso: bool = True
    enable_root_access: bool = True
    release_quota_on_stop: bool = False
    setup_scripts: dict | None = None
    schedules: dict | None = None
    identity: dict | None = None
    created_by: dict | None = None  # {"userOrgId", "userId"}: the tenant and object id of the caller's token
    enable_os_patching: bool = False
    custom_services: list | None = None
    disable_local_auth: bool = False
    state: str = "Creating"
    provisioning_state: str = "Creating"
    last_operation: dict | None = None
    modified_on: str | None = None
    errors: list | None = None
    connectivity: dict | None = None
    runtime_data: dict = field(default_factory=dict)
    pending: dict | None = None  # {"kind", "op_id", "due"} while a transition runs
    automation: dict = field(default_factory=dict)  # idle and schedule bookkeeping (``automation``)

    def runtime_view(self) -> RuntimeInstance:
        # ``data`` is shared, not copied: what the runtime records is persisted with us.
        # With sshPublicAccess Disabled, AML installs no admin key: nobody logs in with it.
        key = self.admin_public_key if self.ssh_public_access else None
        return RuntimeInstance(name=self.name, vm_size=self.vm_size, ssh_public_key=key, data=self.runtime_data,
                               workspace="/".join(self.workspace))

    @property
    def busy(self) -> bool:
        """A transition is running: AML refuses any other action until it ends."""
        return bool(self.pending) or self.state in IN_FLIGHT_STATES

    def owner_oid(self) -> str | None:
        if self.assigned_user:
            return self.assigned_user.get("objectId")
        return (self.created_by or {}).get("userId")


class Backend:
    """All workspaces served by one emulator, and the instances in them."""

    def __init__(
        self,
        workspaces: list[Workspace],
        runtime: InstanceRuntime,
        store: JsonStore,
        transitions: dict | None = None,
        page_size: int = 50,
    ):
        self.workspaces = {ws.key: ws for ws in workspaces}
        self.runtime = runtime
        self.store = store
        self.transitions = {**DEFAULT_TRANSITIONS, **(transitions or {})}
        self.page_size = page_size
        self.faults = FaultPlan()
        self.instances: dict[tuple, Instance] = {}
        self.operations: dict[str, Operation] = {}
        self.quota_overrides: dict[str, dict] = {}  # location -> {"total": n, family: n}
        self._tasks: dict[tuple, asyncio.Task] = {}
        self._lock = asyncio.Lock()
        self.clock = Clock()  # when idle shutdown and schedules fall due (tests move it)

    # ---- persistence -------------------------------------------------

    def _instance_key(self, ws: Workspace, name: str) -> tuple:
        return (*ws.key, name.lower())

    def save(self) -> None:
        recent = sorted(self.operations.values(), key=lambda o: o.started)[-500:]
        self.store.save(
            {
                "instances": [asdict(i) for i in self.instances.values()],
                "operations": [asdict(o) for o in recent],
                "quota_overrides": self.quota_overrides,
                "clock_offset": self.clock.offset,
            }
        )

    async def load(self) -> None:
        """Read the store and pick up where a previous emulator left off."""
        data = self.store.load()
        self.quota_overrides = data.get("quota_overrides", {})
        self.clock.offset = float(data.get("clock_offset", 0.0))
        for raw in data.get("operations", []):
            op = Operation(**raw)
            self.operations[op.id] = op
        for raw in data.get("instances", []):
            raw["workspace"] = tuple(raw["workspace"])
            inst = Instance(**raw)
            ws = self.workspaces.get(inst.workspace)
            if ws is None:
                log.warning("instance %s belongs to a workspace no longer configured; keeping it untouched", inst.name)
            self.instances[(*inst.workspace, inst.name.lower())] = inst
        for inst in list(self.instances.values()):
            if inst.pending:
                log.info("resuming %s of %s after restart", inst.pending["kind"], inst.name)
                self._spawn_task(inst, inst.pending["kind"])
            elif inst.state == "Running":
                self._spawn_task(inst, "recover")

    # ---- lookups -----------------------------------------------------

    def workspace(self, subscription_id: str, resource_group: str, name: str) -> Workspace:
        ws = self.workspaces.get((subscription_id.lower(), resource_group.lower(), name.lower()))
        if ws is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{name}' under resource group '{resource_group}' was not found.",
            )
        return ws

    def instance(self, ws: Workspace, name: str) -> Instance:
        inst = self.instances.get(self._instance_key(ws, name))
        if inst is None:
            raise not_found(f"workspaces/{ws.name}/computes", name)
        return inst

    def list_instances(self, ws: Workspace) -> list[Instance]:
        return sorted((i for i in self.instances.values() if i.workspace == ws.key), key=lambda i: i.name.lower())

    def find_by_name(self, name: str) -> Instance | None:
        for inst in self.instances.values():
            if inst.name.lower() == name.lower():
                return inst
        return None

    def operation(self, op_id: str) -> Operation:
        op = self.operations.get(op_id)
        if op is None:
            raise not_found("locations/computeOperationsStatus", op_id)
        return op

    # ---- quota -------------------------------------------------------

    def _holds_quota(self, inst: Instance) -> bool:
        if inst.state in ("CreateFailed",):
            return False
        if inst.release_quota_on_stop and inst.state in ("Stopped", "Stopping"):
            return False
        return True

    def limits(self, location: str) -> tuple[int, dict]:
        override = self.quota_overrides.get(location.lower(), {})
        total = override.get("total", catalog.DEFAULT_TOTAL_CORES)
        families = {**catalog.DEFAULT_FAMILY_CORES, **{k: v for k, v in override.items() if k != "total"}}
        return total, families

    def usage(self, location: str, exclude: Instance | None = None) -> tuple[int, dict]:
        total, families = 0, {}
        for inst in self.instances.values():
            if inst is exclude or inst.location.lower() != location.lower() or not self._holds_quota(inst):
                continue
            spec = catalog.SIZES.get(inst.vm_size.lower())
            if spec is None:
                continue
            total += spec.vcpus
            families[spec.family] = families.get(spec.family, 0) + spec.vcpus
        return total, families

    def check_quota(self, location: str, spec: catalog.VmSizeSpec, exclude: Instance | None = None) -> None:
        rules.check_quota(location, spec, self.limits(location), self.usage(location, exclude))

    def set_quota(self, location: str, family: str | None, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        key = "total" if family in (None, "", "total") else family
        if key != "total" and key not in catalog.DEFAULT_FAMILY_CORES:
            raise ValueError(f"unknown VM family {family!r}; known: {', '.join(catalog.DEFAULT_FAMILY_CORES)}")
        self.quota_overrides.setdefault(location.lower(), {})[key] = limit
        self.save()

    # ---- operations --------------------------------------------------

    def _new_operation(self, ws: Workspace, inst: Instance, kind: str, duration: float) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            kind=kind,
            compute_id=f"{ws.arm_id}/computes/{inst.name}",
            location=ws.location,
            subscription_id=ws.subscription_id,
            started=time.time(),
            duration=duration,
        )
        self.operations[op.id] = op
        return op

    def _begin(self, ws: Workspace, inst: Instance, kind: str, state: str, trigger: str = "User") -> Operation:
        duration = self.transitions[kind] + (self.transitions["setup"] if kind == "create" and inst.setup_scripts else 0)
        op = self._new_operation(ws, inst, kind, duration)
        inst.state = state
        inst.modified_on = utcnow_iso()
        inst.last_operation = {
            "operationName": OP_NAMES[kind],
            "operationTime": inst.modified_on,
            "operationStatus": "InProgress",
            "operationTrigger": trigger,  # User, or Schedule / IdleShutdown when the emulator acts
        }
        inst.pending = {"kind": kind, "op_id": op.id, "due": op.started + duration}
        self.save()
        self._spawn_task(inst, kind)
        return op

    def _spawn_task(self, inst: Instance, kind: str) -> None:
        key = (*inst.workspace, inst.name.lower())
        task = asyncio.get_running_loop().create_task(self._drive(inst, kind), name=f"{kind}:{inst.name}")
        self._tasks[key] = task
        task.add_done_callback(lambda t, k=key: self._tasks.pop(k, None) if self._tasks.get(k) is t else None)

    async def _sleep_until(self, due: float) -> None:
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _finish(self, inst: Instance, status: str, error: dict | None = None, op_status: str | None = None) -> None:
        op = self.operations.get((inst.pending or {}).get("op_id", ""))
        if op is not None:
            op.status = status
            op.ended = time.time()
            op.error = error
        if inst.last_operation:
            inst.last_operation["operationStatus"] = op_status or status
        inst.pending = None
        inst.modified_on = utcnow_iso()

    async def _drive(self, inst: Instance, kind: str) -> None:
        """Run one transition to its end; never raises."""
        rt = inst.runtime_view()
        due = (inst.pending or {}).get("due", time.time())
        try:
            if kind == "recover":
                inst.connectivity = asdict(await self.runtime.recover(rt))
                self.save()
                return
            if kind == "create":
                await self.runtime.create(rt)
                failure = self.faults.create_failure()
                if inst.setup_scripts:
                    await self._sleep_until(due - self.transitions["setup"])
                    inst.state = "SettingUp"
                    self.save()
                if failure:
                    await self._sleep_until(due)
                    err = RuntimeFailure(
                        failure.message or "Compute instance provisioning failed: the allocation failed in this region."
                    )
                    err.code = failure.code
                    raise err
                inst.connectivity = asdict(await self.runtime.recover(rt))
            elif kind in ("start", "restart"):
                if kind == "restart":
                    await self.runtime.shutdown(rt)
                failure = self.faults.start_failure() if kind == "start" else None
                if failure:
                    await self._sleep_until(due)
                    raise RuntimeFailure(failure.message or "Compute instance failed to start: capacity is not available.")
                inst.connectivity = asdict(await self.runtime.recover(rt))
            elif kind == "stop":
                await self.runtime.shutdown(rt)
                # a stopped instance keeps its addresses (and its SSH port) in AML's answers
            elif kind == "resize":
                pass  # a stopped machine: only its record changes, at the end
            elif kind == "delete":
                await self.runtime.shutdown(rt)
                await self.runtime.destroy(rt)
            await self._sleep_until(due)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed machine ends the operation as AML would, never the emulator
            self._fail(inst, kind, exc)
            self.save()
            return
        if kind == "delete":
            self._finish(inst, "Succeeded")
            self.instances.pop((*inst.workspace, inst.name.lower()), None)
        else:
            if kind == "resize":
                inst.vm_size = (inst.pending or {}).get("vm_size", inst.vm_size)
            inst.state = "Stopped" if kind in ("stop", "resize") else "Running"
            inst.provisioning_state = "Succeeded"
            inst.errors = None
            self._finish(inst, "Succeeded")
        self.save()

    def _fail(self, inst: Instance, kind: str, exc: Exception) -> None:
        code = getattr(exc, "code", None) or (
            "ComputeInstanceCreateFailed" if kind == "create" else "ComputeInstanceOperationFailed"
        )
        message = str(exc) if isinstance(exc, RuntimeFailure) else f"Internal error in the emulated machine: {exc!r}"
        log.warning("%s of %s failed: %s", kind, inst.name, message)
        error = {"code": code, "message": message}
        if kind == "create":
            inst.state = "CreateFailed"
            inst.provisioning_state = "Failed"
            inst.errors = [{"error": error}]
            self._finish(inst, "Failed", error, op_status="CreateFailed")
        elif kind in ("start", "resize"):
            inst.state = "Stopped"  # as it was, with its old size
            inst.errors = [{"error": error}]
            self._finish(inst, "Failed", error, op_status=f"{OP_NAMES[kind]}Failed")
        else:
            inst.state = "Unusable"
            inst.errors = [{"error": error}]
            self._finish(inst, "Failed", error, op_status=f"{OP_NAMES.get(kind, kind.title())}Failed")

    # ---- ARM operations ----------------------------------------------

    async def create_or_update(self, ws: Workspace, name: str, body: dict, caller: dict) -> tuple[Instance, Operation | None, bool]:
        props, pp = rules.check_compute_body(body)
        async with self._lock:
            existing = self.instances.get(self._instance_key(ws, name))
            if existing is not None:
                return self._update(existing, body, pp), None, False
            rules.check_name(name)
            rules.check_name_available(name, ws.location, ((i.name, i.location) for i in self.instances.values()))
            spec = rules.check_vm_size(ws.location, pp.get("vmSize"))
            ssh = pp.get("sshSettings") or {}
            assigned = ((pp.get("personalComputeInstanceSettings") or {}).get("assignedUser")) or None
            key = ssh.get("adminPublicKey") or None
            rules.check_on_behalf_of_ssh(assigned, key)
            ssh_on = (ssh.get("sshPublicAccess") or "Disabled").lower() == "enabled"
            rules.check_ssh_key_given(ssh_on, key, assigned)
            idle = rules.parse_idle_minutes(pp.get("idleTimeBeforeShutdown"))
            rules.check_subnet_if_private(pp.get("enableNodePublicIp", True), (pp.get("subnet") or {}).get("id"))
            rules.check_schedules(pp.get("schedules"))
            self.check_quota(ws.location, spec)
            now = utcnow_iso()
            inst = Instance(
                workspace=ws.key,
                location=ws.location,
                name=name,
                # as sent: a real GET echoes the caller's spelling (its 201 upper-cases it, see render)
                vm_size=pp["vmSize"],
                created_on=now,
                modified_on=now,
                tags=dict(body.get("tags") or {}),
                description=props.get("description"),
                ssh_public_access=ssh_on,
                admin_public_key=key,
                assigned_user=assigned,
                idle_minutes=idle,
                subnet_id=(pp.get("subnet") or {}).get("id"),
                enable_node_public_ip=bool(pp.get("enableNodePublicIp", True)),
                enable_sso=bool(pp.get("enableSSO", True)),
                enable_root_access=bool(pp.get("enableRootAccess", True)),
                release_quota_on_stop=bool(pp.get("releaseQuotaOnStop", False)),
                setup_scripts=pp.get("setupScripts"),
                schedules=pp.get("schedules"),
                identity=_identity_as_answered(body.get("identity"), ws, name, (caller or {}).get("userOrgId")),
                created_by=caller,
                # echoed as given; when absent, AML's defaults (recorded GETs: false, and [] below)
                enable_os_patching=bool(pp.get("enableOSPatching") or False),
                custom_services=list(pp["customServices"]) if isinstance(pp.get("customServices"), list) else None,
                disable_local_auth=bool(props.get("disableLocalAuth") or False),
            )
            self.instances[self._instance_key(ws, name)] = inst
            op = self._begin(ws, inst, "create", "Creating")
            return inst, op, True

    def _update(self, inst: Instance, body: dict, pp: dict) -> Instance:
        """PUT on an existing instance: the same spec again is a no-op (a retried
        create must not fail); tags may change; anything else needs delete + create."""
        rules.check_size_unchanged(inst.name, inst.vm_size, pp.get("vmSize"))
        assigned = ((pp.get("personalComputeInstanceSettings") or {}).get("assignedUser")) or None
        rules.check_assignee_unchanged(inst.name, inst.assigned_user, assigned)
        if "schedules" in pp:  # azure-ai-ml's begin_update sends the instance's schedules
            rules.check_schedules(pp.get("schedules"))
            inst.schedules = pp.get("schedules")
        if "tags" in body:
            inst.tags = dict(body.get("tags") or {})
        if "tags" in body or "schedules" in pp:
            inst.modified_on = utcnow_iso()
            self.save()
        return inst

    async def action(self, ws: Workspace, name: str, action: str, trigger: str = "User") -> Operation:
        async with self._lock:
            inst = self.instance(ws, name)
            rules.check_not_busy(inst.name, inst.state, inst.busy, action)
            rules.check_action(action, name, inst.state)
            if action == "start" and inst.release_quota_on_stop:
                # its cores were given back at stop: it needs them again
                self.check_quota(inst.location, catalog.SIZES[inst.vm_size.lower()], exclude=inst)
            return self._begin(ws, inst, action, ACTION_STATES[action], trigger)

    async def resize(self, ws: Workspace, name: str, target) -> Operation:
        async with self._lock:
            inst = self.instance(ws, name)
            rules.check_not_busy(inst.name, inst.state, inst.busy, "resize")
            spec = rules.check_resize(inst.name, inst.state, target, ws.location)
            if not inst.release_quota_on_stop:
                self.check_quota(inst.location, spec, exclude=inst)  # a stopped instance holds its cores
            op = self._begin(ws, inst, "resize", "Resizing")
            inst.pending["vm_size"] = spec.name
            self.save()
            return op

    def update_idle_shutdown(self, ws: Workspace, name: str, value) -> Instance:
        """POST updateIdleShutdownSetting: a new idle time (15 min - 3 days)."""
        inst = self.instance(ws, name)
        minutes = rules.parse_idle_minutes(value)
        rules.check_idle_time_given(minutes)
        inst.idle_minutes = minutes
        inst.automation["idle"] = after_setting_change(inst.automation.get("idle") or {}, minutes, self.clock.now())
        inst.modified_on = utcnow_iso()
        self.save()
        return inst

    def set_sso(self, inst: Instance, enabled: bool, caller_oid: str | None) -> None:
        rules.check_sso_change(inst.assigned_user, caller_oid)
        inst.enable_sso = enabled
        self.save()

    async def delete(self, ws: Workspace, name: str, underlying_action: str) -> Operation | None:
        rules.check_underlying_action(underlying_action)
        async with self._lock:
            inst = self.instances.get(self._instance_key(ws, name))
            if inst is None:
                return None
            if inst.state == "Deleting" and inst.pending:
                return self.operations[inst.pending["op_id"]]
            if inst.pending:
                # Deleting wins over whatever is running: cancel it, as AML does.
                task = self._tasks.get((*inst.workspace, inst.name.lower()))
                if task:
                    task.cancel()
                self._finish(inst, "Canceled")
            inst.provisioning_state = "Deleting"
            return self._begin(ws, inst, "delete", "Deleting")

    # ---- behind the hub's back (control API) -------------------------

    async def force(self, name: str, what: str) -> Instance:
        """Change an instance the way something other than the hub would:
        ``idle_shutdown`` / ``stop`` (a person in Studio), ``delete``, ``unusable``."""
        inst = self.find_by_name(name)
        if inst is None:
            raise KeyError(name)
        ws = self.workspaces[inst.workspace]
        if what in ("stop", "idle_shutdown"):
            await self.action(ws, inst.name, "stop", "IdleShutdown" if what == "idle_shutdown" else "User")
        elif what == "delete":
            await self.delete(ws, inst.name, "Delete")
        elif what == "unusable":
            await self.runtime.shutdown(inst.runtime_view())
            inst.state = "Unusable"
            inst.connectivity = None
            inst.errors = [{"error": {"code": "NodeUnusable", "message": "The compute instance encountered an unusable node. Restart it or recreate it."}}]
            self.save()
        else:
            raise ValueError(f"unknown action {what!r}; expected stop, idle_shutdown, delete or unusable")
        return inst

    async def wait_idle(self) -> None:
        """Wait until every transition has ended (tests and reset)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def cancel_transitions(self) -> list[asyncio.Task]:
        """Stop driving every running transition; return the cancelled tasks.

        The machines are left as they are: at shutdown they outlive the
        emulator (as VMs outlive ARM), and a restart resumes the transitions
        from the deadlines kept in the store.
        """
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        return tasks

    async def reset(self) -> None:
        await asyncio.gather(*self.cancel_transitions(), return_exceptions=True)
        for inst in list(self.instances.values()):
            rt = inst.runtime_view()
            try:
                await self.runtime.shutdown(rt)
                await self.runtime.destroy(rt)
            except Exception:
                log.exception("reset: could not remove the machine of %s", inst.name)
        self.instances.clear()
        self.operations.clear()
        self.quota_overrides.clear()
        self.faults.clear()
        self.clock.offset = 0.0  # nothing is left that an earlier time could confuse
        self.save()

    # ---- application endpoints ---------------------------------------

    async def application_lab(self, name: str) -> tuple[Instance, Lab]:
        inst = self.find_by_name(name)
        if inst is None:
            raise KeyError(name)
        if inst.state != "Running":
            raise LookupError(f"Compute instance '{inst.name}' is {inst.state}; start it to open JupyterLab.")
        lab = await self.runtime.application_url(inst.runtime_view(), f"/instances/{inst.name}/")
        self.save()
        return inst, lab
