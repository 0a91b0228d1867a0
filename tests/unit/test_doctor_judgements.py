"""The doctor's judgements: Azure AD's refusals, missing permissions, quota room, the lines it prints."""

from aml_jupyterhub.compute.models import Usage, VmSize
from aml_jupyterhub.doctor import REQUIRED_ACTIONS, Check, aad_fix, aad_refusal, missing_actions, quota_problem

COMPUTES = "Microsoft.MachineLearningServices/workspaces/computes"


def test_aad_codes_are_read_and_explained():
    assert aad_refusal("<html>AADSTS50011: The redirect URI ...</html>") == "50011"
    assert aad_refusal('{"error_description": "AADSTS7000215: Invalid client secret"}') == "7000215"
    assert aad_refusal("fine") is None
    assert "AAD_CLIENT_SECRET" in aad_fix("7000215") and "redirect URI" in aad_fix("50011")
    assert "code=12345" in aad_fix("12345")  # an unknown one points at Azure's own explanation


def test_permissions_wildcards_and_not_actions():
    operator = {"actions": [f"{COMPUTES}/*", "Microsoft.MachineLearningServices/workspaces/read"], "notActions": []}
    assert missing_actions([operator], REQUIRED_ACTIONS) == []
    reader = {"actions": ["*/read"], "notActions": []}
    assert missing_actions([reader], REQUIRED_ACTIONS) == [a for a in REQUIRED_ACTIONS if not a.endswith("/read")]
    # AzureML Data Scientist: computes/* minus creating and deleting ('/*/' also matches one '/')
    scientist = {"actions": ["Microsoft.MachineLearningServices/workspaces/*"],
                 "notActions": [f"{COMPUTES}/*/write", f"{COMPUTES}/*/delete"]}
    assert missing_actions([scientist], REQUIRED_ACTIONS) == [f"{COMPUTES}/write", f"{COMPUTES}/delete"]
    assert missing_actions([], [f"{COMPUTES}/read"]) == [f"{COMPUTES}/read"]
    assert missing_actions([{"actions": ["*"]}], REQUIRED_ACTIONS) == []


def test_quota_room_per_family():
    size = VmSize("Standard_NC4as_T4_v3", "standardNCASv3_T4Family", 4, 28, 1)
    full = Usage("standardNCASv3_T4Family", "Standard NCASv3_T4 Family vCPUs", current=6, limit=8)
    assert "needs 4 vCPUs of Standard NCASv3_T4 Family vCPUs, which has 2 free (6 of 8 in use)" in quota_problem(
        size, [full], "gpu (Standard_NC4as_T4_v3)")
    assert quota_problem(size, [Usage("standardNCASv3_T4Family", None, 4, 8)], "gpu") == ""
    assert quota_problem(size, [Usage("standardNCASv3_T4Family", None, 100, -1)], "gpu") == ""  # -1: unlimited
    assert quota_problem(size, [Usage("otherFamily", None, 8, 8)], "gpu") == ""


def test_lines_say_the_fix_only_when_failed():
    assert Check("roles", "ok", "fine", "do x").line() == "ok   roles: fine"
    assert Check("roles", "fail", "no", "do x").line() == "FAIL roles: no\n     fix: do x"
    assert Check("SSH", "skip", "nothing runs").line() == "skip SSH: nothing runs"
