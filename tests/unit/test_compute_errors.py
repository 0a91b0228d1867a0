"""What azure-core and azure-ai-ml raise, turned into the product's errors
(compute/errors.py): the class the spawner acts on, AML's code, and a
message that says what went wrong and what to do."""

from __future__ import annotations

import json

import pytest
from azure.ai.ml.exceptions import ValidationException
from azure.core import exceptions as core
from azure.mgmt.core.exceptions import ARMErrorFormat

from aml_jupyterhub.compute import (
    Busy,
    ComputeError,
    InstanceFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ServiceUnavailable,
    SizeNotOffered,
    Throttled,
)
from aml_jupyterhub.compute.errors import map_sdk_error


class Response:
    """The little of an HTTP response azure-core's errors read."""

    def __init__(self, status: int, body: dict | None = None):
        self.status_code = status
        self.reason = "Reason"
        self.headers = {}
        self.content_type = "application/json"
        self.request = None
        self._body = json.dumps(body or {})

    def text(self, encoding=None):
        return self._body


def arm_error(status: int, code: str | None, message: str, details=(), cls=core.HttpResponseError):
    """An SDK error for an ARM answer ``{"error": {"code", "message", "details"}}``, as azure-ai-ml raises it."""
    error = {"code": code, "message": message, "details": [{"code": c, "message": c} for c in details]}
    return cls(response=Response(status, {"error": error}), error_format=ARMErrorFormat)


def mapped(exc, action="create", name="ci-alice"):
    return map_sdk_error(exc, action=action, name=name)


def test_what_was_being_done_is_said():
    err = mapped(arm_error(400, "BadArgument", "Name is too long."), action="start", name="ci-bob")
    assert err.message == "Could not start compute instance 'ci-bob': Name is too long."
    err = mapped(arm_error(400, "BadArgument", "Bad filter."), action="list compute instances", name=None)
    assert err.message == "Could not list compute instances: Bad filter."


@pytest.mark.parametrize("status,code,message,cls,says", [
    (401, "InvalidAuthenticationToken", "The access token is invalid.", PermissionDenied,
     "rejected the hub's credential (The access token is invalid.). Check the credential"),
    (403, "AuthorizationFailed", "No write access.", PermissionDenied,
     "permission denied (No write access.). Give the hub's identity a role"),
    (429, "TooManyRequests", "Slow down.", Throttled, "the retry budget ran out (Slow down.). Try again in a minute."),
    (500, "InternalServerError", "Oops.", ServiceUnavailable, "answered with an error 500 after retries (Oops.)"),
    (503, None, "Unavailable.", ServiceUnavailable, "answered with an error 503 after retries"),
    (400, "InvalidPropertyValue", "Idle time must be at least 15 minutes.", InvalidRequest,
     "Could not create compute instance 'ci-alice': Idle time must be at least 15 minutes."),
])
def test_http_status_decides(status, code, message, cls, says):
    err = mapped(arm_error(status, code, message))
    assert type(err) is cls
    assert says in err.message
    assert (err.status, err.code) == (status, code)


def test_not_found_says_so():
    err = mapped(arm_error(404, "NotFound", "No such compute.", cls=core.ResourceNotFoundError), action="get")
    assert type(err) is NotFound
    assert err.message == "Could not get compute instance 'ci-alice': it does not exist (No such compute.)."


def test_a_conflict_is_busy_with_amls_words():
    exc = arm_error(409, "Conflict", "Another operation is in progress.", cls=core.ResourceExistsError)
    err = mapped(exc, action="stop")
    assert type(err) is Busy
    assert err.message == "Could not stop compute instance 'ci-alice': Another operation is in progress."


def test_an_action_the_state_forbids_is_not_busy():
    # AML's answer to starting a Running instance: 409, its own code at the top of the error
    exc = arm_error(409, "StartComputeInstanceOnlyAllowedInStoppedState",
                    "Start compute instance is only allowed when it is Stopped; 'ci-alice' is Running.",
                    cls=core.ResourceExistsError)
    err = mapped(exc, action="start")
    assert type(err) is InvalidRequest and err.code == "StartComputeInstanceOnlyAllowedInStoppedState"
    assert err.message.startswith("Could not start compute instance 'ci-alice': it must be Stopped for that (")
    assert "'ci-alice' is Running." in err.message and "Reload the page" in err.message


def test_quota_with_amls_numbers():
    message = ("Operation could not be completed as it results in exceeding approved standardDSv2Family Cores quota. "
               "Current Limit: 24, Current Usage: 20, Additional Required: 8.")
    err = mapped(arm_error(400, "QuotaExceeded", message))
    assert type(err) is QuotaExceeded and err.code == "QuotaExceeded"
    assert "(limit 24 vCPUs, 20 in use, 8 more needed)" in err.message
    assert err.message.endswith("Azure said: " + message)


@pytest.mark.parametrize("code, message, numbers", [
    ("BadRequest", "The specified subscription has a Standard DSv2 family vCPU quota of 0 and is less than the "
                   "requested compute training cluster and/or compute instance's min nodes of 1 which maps to 4 vCPUs",
     "(Standard DSv2 family quota: limit 0 vCPUs, this size needs 4)"),
    ("BadRequest", "The specified subscription has a total vCPU quota of 4 and cannot accomodate for at least 1 "
                   "requested compute instance's node which maps to 24 vCPUs. Talk to your Subscription Admin",
     "(total quota: limit 4 vCPUs, this size needs 24)"),
    ("OutOfQuota", "Not enough cluster CPU quota. The amount of additional CPU quota requested is 8, and you are "
                   "currently using 14. Your amount of maximum quota is 20.",
     "(limit 20 vCPUs, 14 in use, 8 more needed)"),
])
def test_quota_numbers_from_azure_mls_own_wordings(code, message, numbers):
    err = mapped(arm_error(400, code, message))
    assert type(err) is QuotaExceeded and numbers in err.message, err.message


def test_quota_without_numbers_is_still_quota():
    err = mapped(arm_error(400, "BadRequest", "Not enough quota available in this region."))
    assert type(err) is QuotaExceeded and "vCPUs," not in err.message and "ask an admin" in err.message


def test_a_size_the_region_lacks_is_found_in_the_details():
    err = mapped(arm_error(400, "UserError", "Request is invalid.", details=["VmSizeNotSupportedInRegion"]))
    assert type(err) is SizeNotOffered and err.code == "VmSizeNotSupportedInRegion"
    assert "not offered in the workspace's region. Pick another size." in err.message


def test_a_size_the_region_lacks_is_found_in_the_message():
    err = mapped(arm_error(400, "BadRequest", "The VM size Standard_ND96 is not supported in westeurope."))
    assert type(err) is SizeNotOffered and "Azure said: The VM size Standard_ND96" in err.message


def test_a_long_operation_that_failed_is_the_instance_failing():
    # azure-core raises with the last (successful) status poll and AML's error as the text
    exc = core.HttpResponseError(message="Compute instance ci-alice failed: AllocationFailed.", response=Response(200))
    err = mapped(exc)
    assert type(err) is InstanceFailed
    assert err.message == ("Could not create compute instance 'ci-alice': "
                           "Compute instance ci-alice failed: AllocationFailed.")


@pytest.mark.parametrize("exc", [core.ServiceRequestError("connection refused"),
                                 core.ServiceResponseError("read timed out")])
def test_no_answer_from_azure(exc):
    err = mapped(exc, action="get")
    assert type(err) is ServiceUnavailable
    assert f"could not be reached ({exc})" in err.message and "ARM endpoint setting" in err.message


def test_an_sdk_validation_error_keeps_its_text():
    exc = ValidationException(message="Compute name must be 3 to 24 characters.", no_personal_data_message="name")
    err = mapped(exc)
    assert isinstance(err, ComputeError)
    assert err.message == "Could not create compute instance 'ci-alice': Compute name must be 3 to 24 characters."


def test_anything_else_is_named():
    err = mapped(ValueError("boom"))
    assert type(err) is ComputeError
    assert err.message == "Could not create compute instance 'ci-alice': unexpected error ValueError: boom"


def test_a_product_error_is_passed_through():
    original = Busy("already said")
    assert mapped(original) is original


def test_a_credential_that_cannot_get_a_token_is_permission_denied():
    exc = core.ClientAuthenticationError("ClientSecretCredential authentication failed: AADSTS7000215: Invalid secret")
    err = mapped(exc, action="get")
    assert type(err) is PermissionDenied and "authentication to Azure failed" in err.message


def test_not_found_without_a_response_is_not_found():
    assert type(mapped(core.ResourceNotFoundError("Compute ci-alice not found."), action="get")) is NotFound


def test_arms_refusal_says_which_action_and_which_role_grants_it():
    scope = ("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1"
             "/computes/ci-alice")
    message = (f"The client 'c' with object id 'o1' does not have authorization to perform action "
               f"'Microsoft.MachineLearningServices/workspaces/computes/write' over scope '{scope}' or the scope is "
               "invalid. If access was recently granted, please refresh your credentials.")
    err = mapped(arm_error(403, "AuthorizationFailed", message))
    assert type(err) is PermissionDenied and (err.status, err.code) == (403, "AuthorizationFailed")
    assert err.message.startswith("Could not create compute instance 'ci-alice': permission denied. ")
    assert "the action Microsoft.MachineLearningServices/workspaces/computes/write" in err.message
    assert "assign the built-in role AzureML Compute Operator, which grants it," in err.message
    assert "on workspace ws1 (resource group rg1)" in err.message and "Ask an admin" in err.message
