"""The spec check (tests.harness.arm_contract) itself: the spec's own examples
pass, and bodies or headers real AML would never send fail, so the recording
hook that runs it over every emulator response can fail too."""

from __future__ import annotations

import copy
import uuid

import pytest

from tests.harness import arm_contract as contract

WS = ("/subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/resourceGroups/testrg123/providers/"
      "Microsoft.MachineLearningServices/workspaces/workspaces123")
LOC = "/subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/providers/Microsoft.MachineLearningServices/locations/eastus"

# each example with a response body, and the request it answers
EXAMPLE_REQUESTS = {
    "preview/2023-08-01-preview/examples/Compute/get/ComputeInstance.json": ("GET", WS + "/computes/compute123"),
    "preview/2023-08-01-preview/examples/Compute/createOrUpdate/ComputeInstanceMinimal.json":
        ("PUT", WS + "/computes/compute123"),
    "preview/2023-08-01-preview/examples/Compute/listNodes.json": ("POST", WS + "/computes/compute123/listNodes"),
    "preview/2023-08-01-preview/examples/Compute/listKeys.json": ("POST", WS + "/computes/compute123/listKeys"),
    "preview/2023-08-01-preview/examples/Usage/list.json": ("GET", LOC + "/usages"),
    "preview/2023-08-01-preview/examples/VirtualMachineSize/list.json": ("GET", LOC + "/vmSizes"),
}


def arm_headers(**extra) -> dict:
    return {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4()), **extra}


def example_cases():
    examples = contract.load_examples()
    for key, (method, path) in EXAMPLE_REQUESTS.items():
        for status, response in examples[key]["responses"].items():
            if "body" in response:
                yield pytest.param(method, path, int(status), response["body"], id=f"{key.rsplit('/', 1)[1]}-{status}")


def running_instance() -> dict:
    key = "preview/2023-08-01-preview/examples/Compute/get/ComputeInstance.json"
    return copy.deepcopy(contract.load_examples()[key]["responses"]["200"]["body"])


def test_every_example_with_a_body_is_covered():
    examples = contract.load_examples()
    with_body = {k for k, v in examples.items() if not k.startswith("_")
                 and any("body" in r for r in v["responses"].values())}
    assert with_body == set(EXAMPLE_REQUESTS)


@pytest.mark.parametrize("method,path,status,body", list(example_cases()))
def test_spec_examples_are_valid(method, path, status, body):
    exp = contract.expected(method, path, status)
    assert exp.definition is not None
    assert contract.validate_body(exp.definition, body) == []


def test_a_list_of_the_example_instance_is_valid():
    assert contract.validate_body("PaginatedComputeResourcesList", {"value": [running_instance()], "nextLink": None}) == []


def test_nulls_are_accepted_where_real_aml_sends_them():
    body = running_instance()
    pp = body["properties"]["properties"]
    pp.update({"state": None, "sshSettings": None, "connectivityEndpoints": None, "applications": None,
               "lastOperation": None, "customServices": [], "errors": []})
    body["properties"]["provisioningErrors"] = None
    assert contract.validate_body("ComputeResource", body) == []


def _set(path: str, value):
    def mutate(body):
        *parents, last = path.split("/")
        node = body
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value
    return mutate


BROKEN_INSTANCES = {
    "invented field": (_set("properties/properties/connectivityEndpoints/privateSshPort", 22), "privateSshPort"),
    "unknown state": (_set("properties/properties/state", "Sleeping"), "properties/properties/state"),
    "lower-case computeType": (_set("properties/computeType", "computeInstance"), "properties/computeType"),
    "null computeType": (_set("properties/computeType", None), "must not be null"),
    "createdOn not a date": (_set("properties/createdOn", "yesterday"), "date-time"),
    "sshPort a string": (_set("properties/properties/sshSettings/sshPort", "22"), "sshPort"),
    "errors not a list": (_set("properties/properties/errors", {"code": "X"}), "properties/properties/errors"),
    "unknown lastOperation": (_set("properties/properties/lastOperation", {"operationName": "Nap"}), "operationName"),
    "top-level invention": (_set("etag", "x"), "etag"),
}


@pytest.mark.parametrize("name", BROKEN_INSTANCES)
def test_broken_instances_are_invalid(name):
    mutate, where = BROKEN_INSTANCES[name]
    body = running_instance()
    mutate(body)
    problems = contract.validate_body("ComputeResource", body)
    assert problems and any(where in p for p in problems), problems


@pytest.mark.parametrize("definition,body,where", [
    ("OperationStatusResult", {"id": "op", "percentComplete": 50}, "'status' is a required property"),
    ("OperationStatusResult", {"status": "Succeeded", "percentComplete": 120}, "percentComplete"),
    ("OperationStatusResult", {"status": "Succeeded", "endTime": "soon"}, "endTime"),
    ("VirtualMachineSizeListResult", {"value": [{"name": "Standard_DS3_v2", "vCPUs": "4"}]}, "value/0/vCPUs"),
    ("VirtualMachineSizeListResult", {"value": [{"name": "x", "estimatedVMPrices": {"billingCurrency": "EUR",
                                      "unitOfMeasure": "OneHour", "values": []}}]}, "billingCurrency"),
    ("ListUsagesResult", {"value": [{"unit": "Cores", "currentValue": 1}]}, "value/0/unit"),
    ("AmlComputeNodesInformation", {"nodes": [{"nodeState": "Running"}]}, "nodes/0/nodeState"),
    ("ErrorResponse", {"error": {"code": "X", "message": "m", "details": "none"}}, "error/details"),
    ("ComputeSecrets", {}, "computeType"),
])
def test_broken_bodies_are_invalid(definition, body, where):
    problems = contract.validate_body(definition, body)
    assert problems and any(where in p for p in problems), problems


def test_request_maps_to_its_definition():
    assert contract.expected("GET", WS + "/computes", 200).definition == "PaginatedComputeResourcesList"
    assert contract.expected("get", WS.upper() + "/COMPUTES/ci-a/", 200).definition == "ComputeResource"
    assert contract.expected("PUT", WS + "/computes/ci-a", 201).definition == "ComputeResource"
    assert contract.expected("GET", LOC + "/computeOperationsStatus/abc", 200).definition == "OperationStatusResult"
    assert contract.expected("POST", WS + "/computes/ci-a/start", 409).definition == "ErrorResponse"
    # paths the vendored subset does not cover: only their errors are ARM's
    assert contract.expected("GET", WS, 200).definition is None
    assert contract.expected("GET", WS, 404).definition == "ErrorResponse"


def test_check_response_accepts_a_faithful_response():
    assert contract.check_response("GET", WS + "/computes/compute123", 200, arm_headers(), running_instance()) == []
    status = {"id": "op", "name": "op", "status": "InProgress", "startTime": "2025-01-01T10:00:00+00:00"}
    assert contract.check_response("GET", LOC + "/computeOperationsStatus/op", 200, arm_headers(), status) == []
    start = arm_headers(**{"Azure-AsyncOperation": "https://management.azure.com" + LOC + "/computeOperationsStatus/op"})
    assert contract.check_response("POST", WS + "/computes/compute123/start", 202, start, None) == []


def test_check_response_refuses_what_arm_never_sends():
    path = WS + "/computes/compute123"
    assert any("x-ms-correlation-request-id" in p
               for p in contract.check_response("GET", path, 200, {"x-ms-request-id": str(uuid.uuid4())},
                                                running_instance()))
    assert any("status 200" in p for p in contract.check_response("POST", path + "/start", 200, arm_headers(), None))
    assert any("Azure-AsyncOperation" in p
               for p in contract.check_response("POST", path + "/stop", 202, arm_headers(Location="/x"), None))
    assert any("error.code and error.message" in p
               for p in contract.check_response("GET", path, 404, arm_headers(), {"error": {"code": "NotFound"}}))
    assert any("has no body" in p
               for p in contract.check_response("POST", path + "/start", 202,
                                                arm_headers(**{"Azure-AsyncOperation": "https://h/x"}), {"a": 1}))


def test_recorded_responses_are_reported_with_their_request():
    good = {"method": "GET", "path": WS + "/computes/compute123", "query": "api-version=2023-08-01-preview",
            "status": 200, "headers": arm_headers(), "body": running_instance()}
    bad = copy.deepcopy(good)
    bad["body"]["properties"]["properties"]["connectivityEndpoints"]["privateSshPort"] = 22
    assert contract.problems_in([good]) == []
    [report] = contract.problems_in([good, bad])
    assert report.startswith(f"GET {WS}/computes/compute123?api-version=2023-08-01-preview -> 200:")
    assert "unknown property 'privateSshPort'" in report
