"""Plain data the compute client hands out and takes in (no SDK types leak)."""

from __future__ import annotations

from dataclasses import dataclass, field

# AML compute-instance states (azure-ai-ml ComputeInstanceState values).
RUNNING = "Running"
STOPPED = "Stopped"
TRANSIENT_STATES = frozenset(
    {"Creating", "SettingUp", "Starting", "Stopping", "Restarting", "Resizing", "Deleting", "UserSettingUp", "JobRunning"}
)
FAILED_STATES = frozenset({"CreateFailed", "SetupFailed", "UserSetupFailed", "Unusable"})


def _state_text(state) -> str | None:
    # The SDK gives a str-Enum for known states (str() of it is 'ComputeInstanceState.RUNNING'
    # on Python 3.11) and a plain str for unknown ones.
    if state is None:
        return None
    return getattr(state, "value", state)


@dataclass(frozen=True)
class InstanceSpec:
    """What to create. ``assigned_user`` is (object_id, tenant_id) for redirect mode."""

    name: str
    vm_size: str
    ssh_public_key: str | None = None
    assigned_user: tuple[str, str] | None = None
    idle_minutes: int | None = None
    tags: dict = field(default_factory=dict)
    subnet_id: str | None = None
    enable_public_ip: bool = True
    setup_script: str | None = None  # path on the workspace file share, run at each start
    setup_script_args: str | None = None
    setup_timeout_minutes: int = 15
    description: str | None = None
    stop_cron: str | None = None  # AML's own daily (or other) stop, a backstop where the hub cannot act
    stop_time_zone: str = "UTC"  # a Windows time zone name, as AML takes them

    def to_entity(self):
        from azure.ai.ml.entities import (
            AssignedUserConfiguration,
            ComputeInstance,
            ComputeInstanceSshSettings,
            NetworkSettings,
            ScriptReference,
            SetupScripts,
        )

        kwargs = dict(
            name=self.name,
            size=self.vm_size,
            tags=dict(self.tags) or None,
            description=self.description,
            enable_node_public_ip=self.enable_public_ip,
        )
        if self.ssh_public_key:
            kwargs["ssh_public_access_enabled"] = True
            kwargs["ssh_settings"] = ComputeInstanceSshSettings(ssh_key_value=self.ssh_public_key)
        if self.assigned_user:
            oid, tid = self.assigned_user
            kwargs["create_on_behalf_of"] = AssignedUserConfiguration(user_tenant_id=tid, user_object_id=oid)
        if self.idle_minutes:
            kwargs["idle_time_before_shutdown_minutes"] = int(self.idle_minutes)
        if self.subnet_id:
            kwargs["network_settings"] = NetworkSettings(subnet=self.subnet_id)
        if self.stop_cron:
            from azure.ai.ml.entities import ComputeSchedules, ComputeStartStopSchedule, CronTrigger

            kwargs["schedules"] = ComputeSchedules(compute_start_stop=[ComputeStartStopSchedule(
                trigger=CronTrigger(expression=self.stop_cron, time_zone=self.stop_time_zone), action="Stop")])
        if self.setup_script:
            kwargs["setup_scripts"] = SetupScripts(
                startup_script=ScriptReference(
                    path=self.setup_script, command=self.setup_script_args, timeout_minutes=self.setup_timeout_minutes
                )
            )
        return ComputeInstance(**kwargs)


@dataclass(frozen=True)
class InstanceInfo:
    name: str
    id: str | None
    state: str | None
    provisioning_state: str | None
    vm_size: str | None
    location: str | None
    ssh_user: str | None
    ssh_port: int | None
    public_ip: str | None
    private_ip: str | None
    applications: dict
    assigned_user_oid: str | None
    last_operation: dict
    error: str | None
    tags: dict

    @property
    def is_running(self) -> bool:
        return self.state == RUNNING

    @property
    def is_stopped(self) -> bool:
        return self.state == STOPPED

    @property
    def is_transient(self) -> bool:
        return self.state in TRANSIENT_STATES

    @property
    def is_failed(self) -> bool:
        return self.state in FAILED_STATES

    @property
    def lab_url(self) -> str | None:
        return self.applications.get("Jupyter Lab") or self.applications.get("JupyterLab")

    @classmethod
    def from_entity(cls, ci) -> "InstanceInfo":
        ssh = getattr(ci, "ssh_settings", None)
        net = getattr(ci, "network_settings", None)
        apps = {}
        for svc in getattr(ci, "services", None) or []:
            # 1.35 uses camelCase keys, older SDKs snake_case: accept both.
            name = svc.get("displayName") or svc.get("display_name")
            uri = svc.get("endpointUri") or svc.get("endpoint_uri")
            if name and uri:
                apps[name] = uri
        port = getattr(ssh, "ssh_port", None) if ssh else None
        assigned = getattr(ci, "create_on_behalf_of", None)
        last_op = dict(getattr(ci, "last_operation", None) or {})
        errors = getattr(ci, "provisioning_errors", None)
        return cls(
            name=ci.name,
            id=getattr(ci, "id", None),
            state=_state_text(getattr(ci, "state", None)),
            provisioning_state=_state_text(getattr(ci, "provisioning_state", None)),
            vm_size=getattr(ci, "size", None),
            location=getattr(ci, "location", None),
            ssh_user=getattr(ssh, "admin_username", None) if ssh else None,
            ssh_port=int(port) if port not in (None, "") else None,
            public_ip=getattr(net, "public_ip_address", None) if net else None,
            private_ip=getattr(net, "private_ip_address", None) if net else None,
            applications=apps,
            assigned_user_oid=getattr(assigned, "user_object_id", None) if assigned else None,
            last_operation=last_op,
            error=str(errors) if errors else None,
            tags=dict(getattr(ci, "tags", None) or {}),
        )


@dataclass(frozen=True)
class VmSize:
    name: str
    family: str | None
    vcpus: int | None
    memory_gb: float | None
    gpus: int | None
    price_per_hour: float | None = None  # USD, Linux, standard tier
    price_source: str = ""  # "table" (the hub's price table) or "azure" (AML's estimate); "" when none

    @classmethod
    def from_entity(cls, size) -> "VmSize":
        d = size.__dict__
        # azure-ai-ml 1.35 fills these from the wire names (vCPUs, memoryGB);
        # read both spellings.
        vcpus = d.get("v_cp_us") if d.get("v_cp_us") is not None else d.get("vCPUs")
        memory = d.get("memory_gb") if d.get("memory_gb") is not None else d.get("memoryGB")
        prices = d.get("estimated_vm_prices") or d.get("estimatedVMPrices") or {}
        price = None
        values = prices.get("values") if isinstance(prices, dict) else getattr(prices, "values", None)
        for v in values or []:
            v = v if isinstance(v, dict) else v.__dict__
            tier = v.get("vmTier") or v.get("vm_tier")
            os_type = v.get("osType") or v.get("os_type")
            if tier == "Standard" and os_type == "Linux":
                price = v.get("retailPrice") or v.get("retail_price")
        return cls(name=size.name, family=size.family, vcpus=vcpus, memory_gb=memory, gpus=size.gpus, price_per_hour=price)


@dataclass(frozen=True)
class Usage:
    name: str
    display_name: str | None
    current: int
    limit: int

    @classmethod
    def from_entity(cls, usage) -> "Usage":
        d = usage.__dict__
        name = d.get("name")
        value = getattr(name, "value", None) if name is not None else None
        display = getattr(name, "localized_value", None) if name is not None else None
        if isinstance(name, dict):
            value, display = name.get("value"), name.get("localizedValue") or name.get("localized_value")
        current = d.get("current_value") if d.get("current_value") is not None else d.get("currentValue")
        return cls(name=value or str(name), display_name=display, current=int(current or 0), limit=int(d.get("limit") or 0))


@dataclass(frozen=True)
class Progress:
    """One observation while a long operation runs."""

    operation: str  # create, start, stop, restart, delete, wait
    name: str
    state: str | None  # the instance state we believe it is in (e.g. Creating)
    status: str | None  # the operation's status (InProgress, Succeeded...)
    percent: int | None
    elapsed: float
    expected: float | None = None  # seconds the operation is expected to take
    basis: int = 0  # how many of this hub's own operations ``expected`` is the median of (0: the typical figure)
