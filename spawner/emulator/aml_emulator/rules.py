"""Every refusal of the emulated AML control plane, as pure checks.

What a PUT body may hold, which names and sizes are allowed, what quota
allows, and which actions an instance's state permits: each function looks
only at the values it is given (the backend in ``models`` gathers them) and
raises :class:`ArmError` with the status and text AML uses (see
``shared/reference/aml-compute-contract.md`` §5, §6, §10). Where the
reference marks the exact code uncertain, we use 400 ``UserError``, the
service's usual answer for bad input, and say so here.

Not here: a lookup that finds nothing (404, ``errors.not_found``) and what is
wrong with the HTTP request itself (no api-version, bad JSON: ``arm``).
"""

from __future__ import annotations

import re
from typing import Iterable

from . import catalog, schedules
from .errors import ArmError, bad_request, conflict

# the state each action needs the instance to be in
ACTION_NEEDS = {"start": "Stopped", "stop": "Running", "restart": "Running"}

_NAME_CHARS = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_IDLE = re.compile(r"^PT(\d+)M$")
IDLE_MIN_MINUTES = 15
IDLE_MAX_MINUTES = 3 * 24 * 60

NAME_RULE_TEXT = (
    "A name for an Azure ML Compute Instance must be between 3 and 24 characters long. "
    "It can include letters, digits and hyphens. It must start with a letter, "
    "end with a letter or digit, and every hyphen must be followed by at least one letter."
)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid compute instance name, or None if it is."""
    if not 3 <= len(name) <= 24:
        return "it must be between 3 and 24 characters long"
    if not _NAME_CHARS.match(name):
        return "it must start with a letter and contain only letters, digits and hyphens"
    if name.endswith("-"):
        return "it must not end with '-'"
    for i, ch in enumerate(name):
        if ch == "-" and not any(c.isalpha() for c in name[i + 1 :]):
            return "every '-' must be followed later by at least one letter"
    return None


def check_name(name: str) -> None:
    problem = name_problem(name)
    if problem:
        raise bad_request(
            f"Compute name '{name}' is not available. Reason: Invalid. Message: {NAME_RULE_TEXT} ({problem})",
            detail_code="InvalidComputeName",
        )


def parse_idle_minutes(value) -> int | None:
    """ISO-8601 ``PT<n>M`` to minutes; the only form the SDK sends."""
    if value in (None, ""):
        return None
    m = _IDLE.match(str(value))
    if not m:
        raise bad_request(
            f"idleTimeBeforeShutdown '{value}' is not a valid duration; use the form PT<minutes>M, e.g. PT60M.",
            detail_code="InvalidIdleTimeBeforeShutdown",
        )
    minutes = int(m.group(1))
    if not IDLE_MIN_MINUTES <= minutes <= IDLE_MAX_MINUTES:
        raise bad_request(
            f"idleTimeBeforeShutdown must be between {IDLE_MIN_MINUTES} minutes and 3 days; got {minutes} minutes.",
            detail_code="InvalidIdleTimeBeforeShutdown",
        )
    return minutes


def check_idle_time_given(minutes: int | None) -> None:
    # updateIdleShutdownSetting must say what the idle time becomes
    if minutes is None:
        raise bad_request(
            'The body must give idleTimeBeforeShutdown, e.g. {"idleTimeBeforeShutdown": "PT30M"} '
            "(15 minutes to 3 days).",
            detail_code="InvalidIdleTimeBeforeShutdown",
        )


def check_schedules(value) -> list[schedules.Schedule]:
    """``schedules`` of a PUT body: at most 4 start/stop schedules, each with
    a valid cron expression or recurrence and a supported time zone.
    [The detail code is ours; the reference gives no real refusal.]"""
    try:
        return schedules.parse_all(value)
    except ValueError as e:
        raise bad_request(f"Invalid compute instance schedules: {e}.", detail_code="InvalidComputeSchedules") from None


def check_vm_size(location: str, vm_size: str | None) -> catalog.VmSizeSpec:
    if not vm_size:
        raise bad_request("vmSize is required for a compute instance.", detail_code="MissingVmSize")
    spec = catalog.find_size(location, vm_size)
    if spec is None:
        raise bad_request(
            f"The VM size '{vm_size}' is not supported for compute instances in region '{location}'. "
            f"Pick a size that region offers (GET .../locations/{location}/vmSizes lists them).",
            code="BadRequest",
            detail_code="VmSizeNotSupportedInRegion",
        )
    return spec


def check_on_behalf_of_ssh(assigned_user: dict | None, admin_public_key: str | None) -> None:
    if assigned_user and admin_public_key:
        raise bad_request(
            "Setting SSH key at creation time is not allowed when compute instance is provisioned "
            "on behalf of another user.",
            detail_code="SshKeyNotAllowedOnBehalfOf",
        )


def quota_error(location: str, family_display: str, limit: int, usage: int, required: int) -> ArmError:
    """Azure ML's own refusal (not Azure Compute's "exceeding approved ... Current Limit" text): it
    names the quota, its limit and the vCPUs asked for, not the usage; code BadRequest, as seen."""
    if family_display == "Total Regional":
        quota, which = "a total vCPU quota", "total vCPU quota"
    else:
        family = family_display[: -len(" Family")] if family_display.endswith(" Family") else family_display
        quota, which = f"a {family} family vCPU quota", "family quota"
    return ArmError(
        400,
        "BadRequest",
        (
            f"The specified subscription has {quota} of {limit} and cannot accomodate for at least 1 requested "
            f"compute instance's node which maps to {required} vCPUs. Talk to your Subscription Admin or refer to "
            "https://docs.microsoft.com/azure/machine-learning/how-to-manage-quotas#request-quota-increases to "
            f"increase the {which}"
        ),
    )


# ---- the PUT body ----------------------------------------------------------


def check_compute_body(body) -> tuple[dict, dict]:
    """A PUT body's ``properties`` and their inner ``properties``; only compute instances pass."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="BadRequest")
    props = body.get("properties") or {}
    if props.get("computeType") != "ComputeInstance":
        raise bad_request(
            f"computeType '{props.get('computeType')}' is not supported by this emulator; only ComputeInstance is.",
            code="BadRequest",
        )
    return props, props.get("properties") or {}


def check_name_available(name: str, location: str, taken: Iterable[tuple[str, str]]) -> None:
    """``taken``: (name, location) of every existing instance, in any workspace."""
    for other_name, other_location in taken:
        if other_name.lower() == name.lower() and other_location.lower() == location.lower():
            raise conflict(
                f"Compute name '{name}' is not available. Reason: AlreadyExists. Message: compute instance "
                f"names must be unique across all workspaces in region '{location}'.",
                detail_code="ComputeNameNotAvailable",
            )


def check_ssh_key_given(ssh_public_access: bool, admin_public_key: str | None, assigned_user: dict | None) -> None:
    # an instance made on behalf of a user gets that user's key later; any other needs one now
    if ssh_public_access and not admin_public_key and not assigned_user:
        raise bad_request(
            "sshPublicAccess is Enabled but no adminPublicKey was given; give the public key to install.",
            detail_code="MissingSshPublicKey",
        )


def check_subnet_if_private(enable_node_public_ip: bool, subnet_id: str | None) -> None:
    if not enable_node_public_ip and not subnet_id:
        raise bad_request(
            "A compute instance without a public IP needs a subnet of a virtual network "
            "(or a workspace managed network).",
            detail_code="NoPublicIpRequiresSubnet",
        )


def check_quota(location: str, spec: catalog.VmSizeSpec, limits: tuple[int, dict], used: tuple[int, dict]) -> None:
    """Refuse ``spec`` if it exceeds its family's or the region's vCPU quota.

    ``limits`` and ``used`` are (total cores, {family: cores}) of the region.
    The family is checked first, as AML names the narrower quota.
    """
    limit_total, limit_families = limits
    used_total, used_families = used
    family_limit = limit_families.get(spec.family, 0)
    family_used = used_families.get(spec.family, 0)
    if family_used + spec.vcpus > family_limit:
        raise quota_error(location, spec.family_display, family_limit, family_used, spec.vcpus)
    if used_total + spec.vcpus > limit_total:
        raise quota_error(location, "Total Regional", limit_total, used_total, spec.vcpus)


# ---- a PUT on an existing instance ---------------------------------------------


def check_size_unchanged(name: str, current: str, wanted: str | None) -> None:
    if wanted and wanted.lower() != current.lower():
        raise conflict(
            f"Compute instance '{name}' already exists with size {current}; its size cannot be "
            f"changed to {wanted} by create. Stop it and resize, or delete it first.",
            detail_code="ComputePropertiesCannotBeUpdated",
        )


def check_assignee_unchanged(name: str, current: dict | None, wanted: dict | None) -> None:
    if wanted and current and wanted.get("objectId") != current.get("objectId"):
        raise conflict(
            f"Compute instance '{name}' already exists and is assigned to another user.",
            detail_code="ComputePropertiesCannotBeUpdated",
        )


# ---- actions and delete ----------------------------------------------------------


def check_not_busy(name: str, state: str, busy: bool, action: str) -> None:
    """``busy``: a transition of the instance is running (the model knows which)."""
    if busy:
        raise conflict(
            f"Cannot {action} compute instance '{name}' while it is {state}: another operation "
            "is in progress. Wait until it ends, then try again.",
            detail_code="OperationInProgress",
        )


def check_action(action: str, name: str, state: str) -> None:
    """start needs Stopped; stop and restart need Running. AML refuses with 409
    and the specific code at the top of the error (e.g.
    StartComputeInstanceOnlyAllowedInStoppedState), not in its details."""
    needed = ACTION_NEEDS.get(action)
    if needed is None:
        raise bad_request(f"Unknown action '{action}'.", code="BadRequest")
    if state != needed:
        verb = action.title()
        raise ArmError(
            409, f"{verb}ComputeInstanceOnlyAllowedIn{needed}State",
            f"{verb} compute instance is only allowed when it is {needed}; '{name}' is {state}.",
        )


def check_resize(name: str, state: str, target, location: str) -> catalog.VmSizeSpec:
    """An instance is resized only while Stopped (its disk is kept), to a size its region offers.
    [The detail code is shaped as AML's start/stop refusals; unverified against real traffic.]"""
    if not isinstance(target, str) or not target:
        raise bad_request("The request body must give targetVMSize, the size to resize to.", code="BadRequest")
    if state != "Stopped":
        raise bad_request(
            f"Resize compute instance is only allowed when it is Stopped; '{name}' is {state}.",
            detail_code="ResizeComputeInstanceOnlyAllowedInStoppedState",
        )
    return check_vm_size(location, target)


def check_underlying_action(value: str) -> None:
    if value.lower() not in ("delete", "detach"):
        raise bad_request("underlyingResourceAction must be Delete or Detach.", code="BadRequest")


def check_sso_change(assigned_user: dict | None, caller_oid: str | None) -> None:
    # only the assigned user may switch SSO of a personal instance, as in AML
    if assigned_user and caller_oid != assigned_user.get("objectId"):
        raise ArmError(403, "AuthorizationFailed", "Only the assigned user can change SSO of this compute instance.")
