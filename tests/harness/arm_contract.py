"""Azure's published definitions as a check of ARM responses (pure: no I/O but
reading the vendored spec once).

``check_response(method, path, status, headers, body)`` says what in one ARM
response does not match Microsoft.MachineLearningServices 2023-08-01-preview
(the version azure-ai-ml 1.35 sends; the definitions are vendored in
tests/contract/aml_rest_spec/, see its README): an empty list means it matches.

How the swagger is read, and where this is stricter or looser than plain
JSON Schema over it (each with its reason):

- ``$ref``s resolve within the vendored file; a ``discriminator`` base
  (``Compute``) is checked as the subtype its ``computeType`` names
  (``ComputeInstance``), as autorest-generated clients read it.
- null is accepted for any value, except a ``required`` one: real AML sends
  null for many fields the spec does not mark x-nullable (the spec README).
- Properties no definition names are refused (swagger leaves objects open,
  but the emulator must not invent fields, e.g. a ``privateSshPort``), except
  where the definition itself says ``additionalProperties`` and the fields in
  ``_NEWER_FIELDS`` (see there why).
- An ARM error body must carry ``error.code`` and ``error.message`` (ARM's
  error contract; the SDK builds its exception text from them).
- Headers: every response carries GUIDs in ``x-ms-request-id`` and
  ``x-ms-correlation-request-id`` (ARM's), and every 201/202 of a long
  operation an absolute ``Azure-AsyncOperation`` URL (real AML sends that and
  no ``Location``, the spec README says; the spec's own examples differ).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import jsonschema
from jsonschema import Draft7Validator, FormatChecker, ValidationError

SPEC_DIR = Path(__file__).resolve().parents[1] / "contract" / "aml_rest_spec"
SPEC_FILE = SPEC_DIR / "mls-2023-08-01-preview-compute.json"
EXAMPLES_FILE = SPEC_DIR / "x-ms-examples.json"

# Fields real AML returns that the 2023-08-01-preview definitions lack: the
# service's later versions define them, azure-ai-ml 1.35 sends both in every
# PUT and reads them back (its arm_ml_service models), and the reference's GET
# of a real instance shows them (shared/reference/aml-compute-contract.md §3, §4).
_NEWER_FIELDS = {"ComputeInstanceProperties": {"enableSSO", "enableRootAccess"}}

_PROVIDER = "Microsoft.MachineLearningServices"
_SUB = r"/subscriptions/[^/]+"
_WS = _SUB + r"/resourceGroups/[^/]+/providers/" + _PROVIDER + r"/workspaces/[^/]+"
_LOC = _SUB + r"/providers/" + _PROVIDER + r"/locations/[^/]+"

# (method, path pattern, operation id in the spec). The status resource has no
# operation in the spec: its body is ARM's OperationStatusResult (the
# async-operation contract), declared here as ``_OperationStatus``.
_ROUTES = [
    ("GET", _WS + r"/computes", "Compute_List"),
    ("GET", _WS + r"/computes/[^/]+", "Compute_Get"),
    ("PUT", _WS + r"/computes/[^/]+", "Compute_CreateOrUpdate"),
    ("DELETE", _WS + r"/computes/[^/]+", "Compute_Delete"),
    ("POST", _WS + r"/computes/[^/]+/listNodes", "Compute_ListNodes"),
    ("POST", _WS + r"/computes/[^/]+/listKeys", "Compute_ListKeys"),
    ("POST", _WS + r"/computes/[^/]+/start", "Compute_Start"),
    ("POST", _WS + r"/computes/[^/]+/stop", "Compute_Stop"),
    ("POST", _WS + r"/computes/[^/]+/restart", "Compute_Restart"),
    ("GET", _LOC + r"/usages", "Usages_List"),
    ("GET", _LOC + r"/vmSizes", "VirtualMachineSizes_List"),
    ("GET", _LOC + r"/computeOperationsStatus/[^/]+", "_OperationStatus"),
]
_ROUTES = [(m, re.compile(p + r"/?$", re.I), op) for m, p, op in _ROUTES]
_EXTRA_OPERATIONS = {
    "_OperationStatus": {"responses": {"200": {"schema": "OperationStatusResult"}, "default": {"schema": "ErrorResponse"}}},
}

_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


@functools.lru_cache(maxsize=1)
def load_spec() -> dict:
    return json.loads(SPEC_FILE.read_text())


@functools.lru_cache(maxsize=1)
def load_examples() -> dict:
    return json.loads(EXAMPLES_FILE.read_text())


# ---- the swagger definitions as one JSON Schema --------------------------


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _known_properties(defs: dict, name: str, seen=()) -> set | None:
    """Every property name a definition allows (its own and its allOf's), or
    None when it is open (says additionalProperties, or names none)."""
    d = defs[name]
    if "additionalProperties" in d:
        return None
    names = set(d.get("properties", {}))
    for member in d.get("allOf", []):
        if "$ref" not in member:
            return None
        sub = _ref_name(member["$ref"])
        if sub in seen:
            continue
        known = _known_properties(defs, sub, (*seen, name))
        if known is None:
            return None
        names |= known
    if not names:
        return None
    return names | _NEWER_FIELDS.get(name, set())


def _subtypes(defs: dict) -> dict[str, list[tuple[str, str]]]:
    """discriminator base -> [(discriminator value, subtype definition)]."""
    out: dict[str, list] = {}
    for name, d in defs.items():
        value = d.get("x-ms-discriminator-value")
        for member in d.get("allOf", []):
            base = _ref_name(member.get("$ref", ""))
            if value and "discriminator" in defs.get(base, {}):
                out.setdefault(base, []).append((value, name))
    return out


def _rewrite_refs(node, fn):
    if isinstance(node, dict):
        return {k: (fn(v) if k == "$ref" else _rewrite_refs(v, fn)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, fn) for v in node]
    return node


@functools.lru_cache(maxsize=1)
def schema_definitions() -> dict:
    """The spec's definitions, made checkable: for each definition ``N``,
    ``N`` (strict: refuses unknown properties), ``N~open`` (the same but
    open: what an ``allOf`` member is, since its siblings add properties) and,
    for a discriminator base, ``N`` dispatches on the discriminator."""
    defs = load_spec()["definitions"]
    subtypes = _subtypes(defs)
    out = {}
    for name, d in defs.items():
        body = {k: v for k, v in copy.deepcopy(d).items() if k != "allOf"}
        if "allOf" in d:
            body["allOf"] = [_rewrite_refs(m, lambda r: r + "~open") for m in d["allOf"]]
        open_name = name + "~open"
        out[open_name] = body
        known = _known_properties(defs, name)
        strict = {"allOf": [{"$ref": f"#/definitions/{open_name}"}]}
        if known is not None:
            strict["x-known-properties"] = sorted(known)
        if "discriminator" in d:
            field = d["discriminator"]
            # the base itself (unknown or absent value): checked open, since
            # its subtype's definition is not in the vendored subset
            chain: dict = {"$ref": f"#/definitions/{open_name}"}
            for value, sub in subtypes.get(name, []):
                chain = {
                    "if": {"type": "object", "required": [field], "properties": {field: {"const": value}}},
                    "then": {"$ref": f"#/definitions/{sub}"},
                    "else": chain,
                }
            strict = chain
        out[name] = strict
    return out


def _type(validator, types, instance, schema):
    if instance is None:  # null for any value: see the module's docstring
        return
    yield from jsonschema._keywords.type(validator, types, instance, schema)


def _enum(validator, enums, instance, schema):
    if instance is None:
        return
    yield from jsonschema._keywords.enum(validator, enums, instance, schema)


def _required(validator, required, instance, schema):
    if not isinstance(instance, dict):
        return
    for key in required:
        if key not in instance:
            yield ValidationError(f"{key!r} is a required property")
        elif instance[key] is None:
            yield ValidationError(f"{key!r} is required and must not be null")


def _known(validator, known, instance, schema):
    if isinstance(instance, dict):
        extra = sorted(set(instance) - set(known))
        if extra:
            yield ValidationError(f"unknown propert{'ies' if len(extra) > 1 else 'y'} {', '.join(map(repr, extra))} "
                                  f"(the definition has: {', '.join(known)})")


_formats = FormatChecker(formats=())


@_formats.checks("date-time")
def _is_date_time(value) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.match(value))


@_formats.checks("uuid")
def _is_uuid(value) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_SpecValidator = jsonschema.validators.extend(
    Draft7Validator,
    validators={"type": _type, "enum": _enum, "required": _required, "x-known-properties": _known},
)


@functools.lru_cache(maxsize=None)
def _validator(definition: str):
    schema = {"$ref": f"#/definitions/{definition}", "definitions": schema_definitions()}
    return _SpecValidator(schema, format_checker=_formats)


def _where(error: ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(body)"


def validate_body(definition: str, body) -> list[str]:
    """What in ``body`` does not match the definition (by name), as "path: why"."""
    if not isinstance(body, dict):
        return [f"(body): expected a JSON object ({definition}), got {type(body).__name__}"]
    errors = sorted(_validator(definition).iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_where(e)}: {e.message}" for e in errors]


# ---- which definition a response is ---------------------------------------


@dataclass(frozen=True)
class Expected:
    operation: str | None  # the spec's operation id, None for a path it does not cover
    definition: str | None  # the body's definition, None when no body is defined
    allowed: bool  # the status is one the operation answers with
    long_running: bool


def expected(method: str, path: str, status: int) -> Expected:
    ops = {**load_spec()["operations"], **_EXTRA_OPERATIONS}
    op_id = next((op for m, p, op in _ROUTES if m == method.upper() and p.match(path)), None)
    if op_id is None:
        # any ARM error has ARM's error body, whichever resource provider answers
        return Expected(None, "ErrorResponse" if status >= 400 else None, True, False)
    op = ops[op_id]
    responses = op["responses"]
    key = str(status) if str(status) in responses else ("default" if status >= 400 else None)
    if key is None:
        return Expected(op_id, None, False, bool(op.get("x-ms-long-running-operation")))
    return Expected(op_id, responses[key].get("schema"), True, bool(op.get("x-ms-long-running-operation")))


def _is_guid(value) -> bool:
    return _is_uuid(value) if isinstance(value, str) else False


def check_response(method: str, path: str, status: int, headers: dict, body) -> list[str]:
    """Everything in one ARM response that does not match the spec (empty: it does)."""
    h = {k.lower(): v for k, v in (headers or {}).items()}
    problems = []
    for name in ("x-ms-request-id", "x-ms-correlation-request-id"):
        if not _is_guid(h.get(name)):
            problems.append(f"header {name}: ARM sends a GUID, got {h.get(name)!r}")
    exp = expected(method, path, status)
    if not exp.allowed:
        statuses = sorted(k for k in load_spec()["operations"][exp.operation]["responses"] if k != "default")
        problems.append(f"status {status}: {exp.operation} answers only {', '.join(statuses)} (or an error)")
        return problems
    if exp.long_running and status in (201, 202):
        url = h.get("azure-asyncoperation")
        if not (isinstance(url, str) and url.startswith("https://")):
            problems.append(f"header Azure-AsyncOperation: a {status} of {exp.operation} carries an absolute "
                            f"status URL, got {url!r}")
    if exp.definition is None:
        if body not in (None, "", {}) and exp.operation is not None:
            problems.append(f"body: {exp.operation} {status} has no body in the spec, got {str(body)[:200]}")
        return problems
    problems += validate_body(exp.definition, body)
    if exp.definition == "ErrorResponse" and isinstance(body, dict):
        error = body.get("error")
        if not isinstance(error, dict) or not error.get("code") or not error.get("message"):
            problems.append("error: an ARM error body carries error.code and error.message")
    return problems


def problems_in(records: list[dict]) -> list[str]:
    """One text per recorded response (``--record-responses`` lines) that does
    not match: the request, its status and each problem."""
    out = []
    for r in records:
        problems = check_response(r["method"], r["path"], r["status"], r["headers"], r["body"])
        if problems:
            query = f"?{r['query']}" if r.get("query") else ""
            out.append(f"{r['method']} {r['path']}{query} -> {r['status']}:\n    " + "\n    ".join(problems))
    return out
