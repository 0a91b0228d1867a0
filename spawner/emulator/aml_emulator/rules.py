"""What AML refuses when a compute instance is created: pure checks.

Each function raises :class:`ArmError` with the status and text AML uses (see
``shared/reference/aml-compute-contract.md`` §5, §6, §10). Where the
reference marks the exact code uncertain, we use 400 ``UserError``, the
service's usual answer for bad input, and say so here.
"""

from __future__ import annotations

import re

from . import catalog
from .errors import ArmError, bad_request

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
    # Text shaped like the service's quota message; code "QuotaExceeded" is
    # our choice (the reference does not pin the code down).
    return ArmError(
        400,
        "QuotaExceeded",
        (
            f"Operation could not be completed as it results in exceeding approved {family_display} "
            f"vCPU quota. Location: {location}, Current Limit: {limit}, Current Usage: {usage}, "
            f"Additional Required: {required}, (Minimum) New Limit Required: {usage + required}. "
            "Stop or delete other compute in this region, pick a smaller size, or request a quota increase."
        ),
        details=[{"code": "QuotaExceeded", "message": f"{family_display}: limit {limit}, usage {usage}, required {required}"}],
    )
