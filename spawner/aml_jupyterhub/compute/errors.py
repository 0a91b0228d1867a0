"""Domain errors of the compute client, and the mapping from SDK errors.

Each error's message is for a person: what went wrong, in AML's own words
where AML gave some, and what to do about it.
"""

from __future__ import annotations

import re

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from .permissions import advice


class ComputeError(Exception):
    """Base class. ``code`` is AML's error code when there was one."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class NotFound(ComputeError):
    pass


class QuotaExceeded(ComputeError):
    pass


class SizeNotOffered(ComputeError):
    pass


class PermissionDenied(ComputeError):
    pass


class Throttled(ComputeError):
    pass


class InstanceFailed(ComputeError):
    """AML says the instance failed (CreateFailed, StartFailed, Unusable...)."""


class InvalidRequest(ComputeError):
    pass


class Busy(ComputeError):
    """Another operation on the instance is in progress (ARM 409)."""


class ForeignInstance(ComputeError):
    """The instance with the name asked for belongs to somebody else; nothing was done to it."""


class ServiceUnavailable(ComputeError):
    """AML did not answer usefully (5xx, network) within the retry budget."""


class OperationTimeout(ComputeError):
    pass


# The numbers of a quota refusal, in the wordings Azure uses: Azure Compute's
# ("Current Limit: 8, Current Usage: 6, Additional Required: 4"), Azure ML's
# own for compute ("... has a Standard DSv2 family vCPU quota of 8 and ...
# maps to 4 vCPUs": no usage) and AML's OutOfQuota ("additional CPU quota
# requested is 4, and you are currently using 6. Your amount of maximum quota is 8").
_QUOTA_COMPUTE = re.compile(r"Current Limit: (\d+), Current Usage: (\d+), Additional Required: (\d+)")
_QUOTA_AML = re.compile(r"has an? (.+?) vCPU quota of (\d+) .*?maps to (\d+) vCPU", re.S)
_QUOTA_OUT_OF = re.compile(r"requested is (\d+), and you are currently using (\d+)\. Your amount of maximum quota "
                           r"is (\d+)")


def quota_numbers(message: str) -> str:
    """" (limit 8 vCPUs, 6 in use, 4 more needed)"-style text from any wording; "" if it has none."""
    m = _QUOTA_COMPUTE.search(message)
    if m:
        limit, usage, need = m.groups()
        return f" (limit {limit} vCPUs, {usage} in use, {need} more needed)"
    m = _QUOTA_OUT_OF.search(message)
    if m:
        need, usage, limit = m.groups()
        return f" (limit {limit} vCPUs, {usage} in use, {need} more needed)"
    m = _QUOTA_AML.search(message)
    if m:
        which, limit, need = m.groups()
        return f" ({which} quota: limit {limit} vCPUs, this size needs {need})"
    return ""


# e.g. StartComputeInstanceOnlyAllowedInStoppedState: group 1 is the state the action needs
_WRONG_STATE = re.compile(r"^[A-Za-z]+ComputeInstanceOnlyAllowedIn([A-Za-z]+)State$")


def _arm_code_and_message(exc: HttpResponseError) -> tuple[str | None, str]:
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    message = getattr(err, "message", None)
    details = getattr(err, "details", None) or []
    detail_codes = [getattr(d, "code", None) for d in details]
    if not message:
        message = str(exc.message or exc).strip()
    # Prefer the specific detail code (e.g. VmSizeNotSupportedInRegion) when the top one is generic.
    if code in (None, "UserError", "BadRequest") and any(detail_codes):
        code = next(c for c in detail_codes if c)
    return code, message


def map_sdk_error(exc: BaseException, *, action: str, name: str | None = None) -> ComputeError:
    """Turn what azure-ai-ml / azure-core raised into a ComputeError.

    ``action`` is what we were doing ("create", "start", "get"...), used to
    make the message concrete.
    """
    if isinstance(exc, ComputeError):
        return exc
    what = f"{action} compute instance '{name}'" if name else action
    # azure-identity raises ClientAuthenticationError (an HttpResponseError) with no
    # response when it cannot get a token at all: a wrong secret, no identity
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return PermissionDenied(
            f"Could not {what}: authentication to Azure failed ({exc}). Check the hub's Azure credential "
            "(service principal secret, managed identity, or az login).",
            status=401,
        )
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code, message = _arm_code_and_message(exc)
        if status is None or status < 400:
            if isinstance(exc, ResourceNotFoundError):
                return NotFound(f"Could not {what}: it does not exist ({message}).", code=code)
            # A long operation that ended Failed: azure-core raises with the
            # (successful) status poll as the response and AML's error as text.
            return InstanceFailed(f"Could not {what}: {message}", code=code)
        if status == 401:
            return PermissionDenied(
                f"Could not {what}: Azure rejected the hub's credential ({message}). Check the credential the hub uses.",
                code=code, status=status,
            )
        if status == 403:
            todo = advice(message) if code == "AuthorizationFailed" else None
            if todo is not None:
                return PermissionDenied(f"Could not {what}: permission denied. {todo}",
                                        code=code, status=status)
            return PermissionDenied(
                f"Could not {what}: permission denied ({message}). Give the hub's identity a role that allows "
                "managing compute in the workspace (e.g. AzureML Compute Operator).",
                code=code, status=status,
            )
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            return NotFound(f"Could not {what}: it does not exist ({message}).", code=code, status=status)
        if status == 429:
            return Throttled(
                f"Could not {what}: Azure is throttling requests and the retry budget ran out ({message}). "
                "Try again in a minute.",
                code=code, status=status,
            )
        if code in ("QuotaExceeded", "OutOfQuota") or "quota" in message.lower():
            hint = quota_numbers(message)
            return QuotaExceeded(
                f"Could not {what}: the vCPU quota for this size is used up{hint}. Stop another server, pick a "
                f"smaller size, or ask an admin to request more quota. Azure said: {message}",
                code=code, status=status,
            )
        if code in ("VmSizeNotSupportedInRegion",) or ("vm size" in message.lower() and "not supported" in message.lower()):
            return SizeNotOffered(
                f"Could not {what}: that VM size is not offered in the workspace's region. Pick another size. "
                f"Azure said: {message}",
                code=code, status=status,
            )
        wrong_state = _WRONG_STATE.match(code or "")
        if wrong_state:
            # AML's 409 for an action the instance's state does not allow (start
            # while Running...): not another operation in progress, so not Busy
            return InvalidRequest(
                f"Could not {what}: it must be {wrong_state.group(1)} for that ({message}). Reload the page to "
                "see what state it is in now, then try again.",
                code=code, status=status,
            )
        if isinstance(exc, ResourceExistsError) or status == 409:
            return Busy(
                f"Could not {what}: {message}",
                code=code, status=status,
            )
        if status is not None and status >= 500:
            return ServiceUnavailable(
                f"Could not {what}: Azure Machine Learning answered with an error {status} after retries ({message}). "
                "Try again in a few minutes.",
                code=code, status=status,
            )
        return InvalidRequest(f"Could not {what}: {message}", code=code, status=status)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return ServiceUnavailable(
            f"Could not {what}: Azure Machine Learning could not be reached ({exc}). Check the hub's network "
            "and the ARM endpoint setting.",
        )
    if isinstance(exc, AzureError):
        return ServiceUnavailable(f"Could not {what}: {exc}")
    return ComputeError(f"Could not {what}: unexpected error {type(exc).__name__}: {exc}")
