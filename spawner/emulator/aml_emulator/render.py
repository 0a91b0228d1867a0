"""ARM bodies: the JSON AML returns for each model.

The models (``models``, ``catalog``) hold state and know nothing of how ARM
spells it; ``arm`` routes requests and answers with what this module makes.
The shapes are those of ``shared/reference/aml-compute-contract.md`` (§3 the
compute instance, §9 sizes and usages), so the real SDK reads these bodies as
it reads Azure's.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from . import catalog
from .models import PROVIDER, Instance, Operation, Workspace


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


# What the service answers for a schedule: its enums in their own spelling
# (the SDK sends "stop", "cron"...) and only the fields its definitions have
# (the SDK also nests a triggerType inside cron/recurrence).
_CANONICAL = {"action": ("Start", "Stop"), "status": ("Enabled", "Disabled"), "triggerType": ("Cron", "Recurrence")}
_TRIGGER_FIELDS = {"cron": ("startTime", "timeZone", "expression"),
                   "recurrence": ("frequency", "interval", "startTime", "timeZone", "schedule")}


def _canonical(value, choices):
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    return value


def _schedule_as_answered(item: dict) -> dict:
    out = dict(item)
    for key, choices in _CANONICAL.items():
        if key in out:
            out[key] = _canonical(out[key], choices)
    for key, fields in _TRIGGER_FIELDS.items():
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k in fields}
            if key == "recurrence" and "frequency" in out[key]:
                out[key]["frequency"] = _canonical(out[key]["frequency"], ("Minute", "Hour", "Day", "Week", "Month"))
    return out


def schedules(inst: Instance) -> dict:
    """As sent, in the service's own spelling, plus what the service adds to each schedule: a
    stable ``id`` and ``provisioningStatus`` (read-only; the SDK reads both back)."""
    items = []
    for i, item in enumerate((inst.schedules or {}).get("computeStartStop") or []):
        if isinstance(item, dict):
            sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{'/'.join(inst.workspace)}/{inst.name.lower()}/schedule/{i}"))
            item = {**_schedule_as_answered(item), "id": sid, "provisioningStatus": "Completed"}
        items.append(item)
    return {**(inst.schedules or {}), "computeStartStop": items}


def workspace(ws: Workspace) -> dict:
    return {
        "id": ws.arm_id,
        "name": ws.name,
        "type": f"{PROVIDER}/workspaces",
        "location": ws.location,
        "tags": {},
        "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, ws.arm_id)),
                     "tenantId": "00000000-0000-0000-0000-000000000000"},
        "sku": {"name": "Basic", "tier": "Basic"},
        "kind": "Default",
        "properties": {
            "friendlyName": ws.name,
            "description": "Workspace served by the aml-jupyterhub emulator",
            "provisioningState": "Succeeded",
            "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, ws.arm_id + "/id")),
            "publicNetworkAccess": "Enabled",
            "hbiWorkspace": False,
            "v1LegacyMode": False,
        },
    }


def operation(op: Operation) -> dict:
    """The ``Azure-AsyncOperation`` resource the SDK's poller reads."""
    body = {
        "id": op.id,
        "name": op.id,
        "status": op.status,
        "startTime": _iso(op.started),
    }
    # as real AML's: no progress figure while it runs, percentComplete (100) only at the end
    if op.status != "InProgress":
        body["endTime"] = _iso(op.ended or time.time())
        body["percentComplete"] = 100
    if op.error:
        body["error"] = op.error
    return body


# What ``properties.properties.versions.runtime`` reads once the machine has run:
# the value recorded traffic shows (azure-ai-ml's e2e recording of a compute
# instance's create/stop/start, GETs of the Running and the Stopped instance).
RUNTIME_VERSION = "3.0.02853.0001"


def created_by(inst: Instance) -> dict | None:
    """``createdBy`` as AML answers it: the tenant (``userOrgId``) and object
    id (``userId``) of the token that created the instance, and no user name
    (recorded traffic has exactly these two keys; the spec's example also shows
    a ``userName``, real answers do not)."""
    if not inst.created_by:
        return None
    return {"userOrgId": inst.created_by.get("userOrgId"), "userId": inst.created_by.get("userId")}


def compute_instance(inst: Instance, ws: Workspace | None, app_base: str, just_created: bool = False) -> dict:
    """A ``computes/{name}`` resource; ``app_base`` is where browsers reach the application endpoints.

    As real AML answers (recorded traffic: azure-ai-ml's e2e recordings of a
    compute instance's create, stop, start and delete, api-version
    2023-08-01-preview; see tests/contract/test_emulator_faithful.py):

    - no ``systemData``, on any compute answer (the workspace has one, a compute has none);
    - ``createdBy`` is ``{"userOrgId", "userId"}`` (``created_by``);
    - the 201 of a create (``just_created``) leaves null what the instance
      only reports once it is provisioned: state, last operation, sshSettings,
      addresses, applications, errors, versions, OS image, sharing policy,
      customServices (and subnet, assigned user, setup scripts); it has no
      ``computeLocation`` or ``schedules`` yet, ``tags`` null when none were
      given, and the size upper-cased;
    - once the machine has run: its addresses, SSH port, applications and
      ``versions.runtime`` are set, and a stopped machine keeps them all;
      until then (Creating, CreateFailed) they are null;
    - a GET echoes what the PUT gave: the size as spelled, ``enableOSPatching``
      (false when not given) and ``customServices`` ([] when not given, never
      null), ``disableLocalAuth`` (false when not given), all in the inner
      ``properties`` but the last.
    """
    arm_id = f"{ws.arm_id if ws else ''}/computes/{inst.name}"
    conn = inst.connectivity or {}
    ran = inst.connectivity is not None  # the machine has run (and has addresses), now or before a stop
    pp = {
        "vmSize": inst.vm_size,
        "subnet": {"id": inst.subnet_id} if inst.subnet_id else None,
        "state": inst.state,
        "applicationSharingPolicy": "Personal" if inst.assigned_user else "Shared",
        "computeInstanceAuthorizationType": "personal",
        "enableSSO": inst.enable_sso,
        "sshSettings": {
            "sshPublicAccess": "Enabled" if inst.ssh_public_access else "Disabled",
            "adminUserName": "azureuser",
            "sshPort": conn.get("ssh_port", 50000) if ran else None,
            "adminPublicKey": inst.admin_public_key,
        },
        "autologgerSettings": None,
        "connectivityEndpoints": {
            "publicIpAddress": conn.get("public_ip") if inst.enable_node_public_ip else None,
            "privateIpAddress": conn.get("private_ip"),
        } if ran else None,
        "applications": [
            {"displayName": "Jupyter", "endpointUri": f"{app_base}/instances/{inst.name}/tree/"},
            {"displayName": "Jupyter Lab", "endpointUri": f"{app_base}/instances/{inst.name}/lab"},
        ] if ran else None,
        "createdBy": created_by(inst),
        "errors": list(inst.errors or []),
        "lastOperation": inst.last_operation,
        "personalComputeInstanceSettings": {"assignedUser": inst.assigned_user} if inst.assigned_user else None,
        "enableNodePublicIp": inst.enable_node_public_ip,
        "enableRootAccess": inst.enable_root_access,
        "releaseQuotaOnStop": inst.release_quota_on_stop,
        "enableOSPatching": inst.enable_os_patching,
        "osImageMetadata": {"currentImageVersion": "25.01.31", "latestImageVersion": "25.01.31",
                            "isLatestOsImageVersion": True, "osPatchingStatus": None},
        "schedules": schedules(inst),
        "setupScripts": inst.setup_scripts,
        "customServices": list(inst.custom_services or []),
        "dataDisks": None,
        "dataMounts": None,
        "containers": None,
        "versions": {"runtime": RUNTIME_VERSION} if ran else None,
    }
    if inst.idle_minutes is not None:
        pp["idleTimeBeforeShutdown"] = f"PT{inst.idle_minutes}M"
    props = {
        "computeType": "ComputeInstance",
        "computeLocation": inst.location,
        "description": inst.description,
        "provisioningState": inst.provisioning_state,
        "provisioningErrors": inst.errors if inst.state == "CreateFailed" else None,
        "createdOn": inst.created_on,
        "modifiedOn": inst.modified_on,
        "resourceId": None,
        "isAttachedCompute": False,
        "disableLocalAuth": inst.disable_local_auth,
        "properties": pp,
    }
    if just_created:
        # The recorded 201 nulls even what the PUT gave (its sshSettings and
        # applicationSharingPolicy "Shared" came back null). Fields the recording did not give
        # (customServices, subnet, assigned user, setup scripts, schedules) are
        # unknown there: we take the harder case for a client, null (schedules absent).
        pp.update({key: None for key in (
            "state", "lastOperation", "sshSettings", "connectivityEndpoints", "applications", "errors", "versions",
            "osImageMetadata", "applicationSharingPolicy", "customServices", "subnet",
            "personalComputeInstanceSettings", "setupScripts")})
        pp["vmSize"] = inst.vm_size.upper()
        pp.pop("schedules")
        props.pop("computeLocation")
    body = {
        "id": arm_id,
        "name": inst.name,
        "type": f"{PROVIDER}/workspaces/computes",
        "location": inst.location,
        "tags": (inst.tags or None) if just_created else inst.tags,
        "properties": props,
    }
    if inst.identity:
        body["identity"] = inst.identity
    return body


def nodes(inst: Instance) -> dict:
    """The ``listNodes`` answer: one node while the instance runs, none otherwise."""
    if inst.state != "Running" or not inst.connectivity:
        return {"nodes": [], "nextLink": None}
    conn = inst.connectivity
    return {
        "nodes": [
            {
                "nodeId": f"tvmps_{uuid.uuid5(uuid.NAMESPACE_URL, inst.name).hex[:32]}_d",
                "privateIpAddress": conn.get("private_ip"),
                "publicIpAddress": conn.get("public_ip"),
                "port": conn.get("ssh_port"),
                "nodeState": "idle",
                "runId": None,
            }
        ],
        "nextLink": None,
    }


def usages(subscription_id: str, location: str, limits: tuple[int, dict], used: tuple[int, dict]) -> list[dict]:
    """The ``usages`` list: regional cores first, then one entry a VM family.

    ``limits`` and ``used`` are (total cores, {family: cores}), as the
    backend's quota accounting gives them.
    """
    limit_total, limit_families = limits
    used_total, used_families = used
    base = f"/subscriptions/{subscription_id}/providers/{PROVIDER}/locations/{location}"
    out = [
        {
            "id": f"{base}/usages/totalCores",
            "amlWorkspaceLocation": location,
            "type": f"{PROVIDER}/totalCores/usages",
            "unit": "Count",
            "currentValue": used_total,
            "limit": limit_total,
            "name": {"value": "Cores", "localizedValue": "Total Regional Cores"},
        }
    ]
    displays = {s.family: s.family_display for s in catalog.SIZES.values()}
    for family, limit in limit_families.items():
        out.append(
            {
                "id": f"{base}/usages/{family}",
                "amlWorkspaceLocation": location,
                "type": f"{PROVIDER}/vmFamily/usages",
                "unit": "Count",
                "currentValue": used_families.get(family, 0),
                "limit": limit,
                "name": {"value": family, "localizedValue": f"{displays.get(family, family)} Dedicated vCPUs"},
            }
        )
    return out


def vm_size(spec: catalog.VmSizeSpec) -> dict:
    return {
        "name": spec.name,
        "family": spec.family,
        "vCPUs": spec.vcpus,
        "gpus": spec.gpus,
        "osVhdSizeMB": spec.os_disk_mb,
        "maxResourceVolumeMB": spec.resource_disk_mb,
        "memoryGB": spec.memory_gb,
        "lowPriorityCapable": spec.gpus == 0,
        "premiumIO": True,
        "supportedComputeTypes": ["AmlCompute", "ComputeInstance"],
        "estimatedVMPrices": {
            "billingCurrency": "USD",
            "unitOfMeasure": "OneHour",
            "values": [
                {"retailPrice": spec.price_usd_hour, "osType": "Linux", "vmTier": "Standard"},
                {"retailPrice": round(spec.price_usd_hour * 0.2, 4), "osType": "Linux", "vmTier": "LowPriority"},
            ],
        },
    }
