"""hub/setup-azure.sh, run for real with a stand-in for the Azure CLI.

There is no Azure here, so a small fake ``az`` (written into each test's tmp
dir and put first on PATH) plays the CLI: it logs every argv, keeps what was
"created" in a state file (marshal, so the fake imports nothing and starts
fast), answers ``show``/``list`` from that state (exit
code 3 for "not found", as az does), and supports the few ``--query``
expressions and ``-o tsv``/``-o none`` the script uses. Everything else is the
real script, bash and files.
"""

from __future__ import annotations

import marshal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.repo import ROOT

SCRIPT = ROOT / "hub" / "setup-azure.sh"

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "99999999-8888-7777-6666-555555555555"
DATA_SCIENCE = "5e1dd9df-b8aa-4f0e-a9ea-7938609ffd83"
HUB_ADMINS = "210f7918-0891-4d4c-8cac-a85617d80301"
USER_READ = "e1fe6dd8-ba31-4d61-89e7-88639da4683d"

FAKE_AZ = r'''#!__PYTHON__ -SI
# A stand-in for the Azure CLI. It imports nothing but builtins (marshal) so
# that each call costs a bare interpreter start.
import marshal, os, sys

SUB, TENANT = "__SUB__", "__TENANT__"
STATE, LOG = os.environ["AZ_FAKE_STATE"], os.environ["AZ_FAKE_LOG"]
argv = sys.argv[1:]
with open(LOG, "a") as f:
    f.write("\x1f".join(argv) + "\n")
with open(STATE, "rb") as f:
    state = marshal.load(f)

SHORT = {"-n": "--name", "-g": "--resource-group", "-l": "--location", "-o": "--output", "-y": "--yes"}
words, opts, i = [], {}, 0
while i < len(argv) and not argv[i].startswith("-"):
    words.append(argv[i]); i += 1
key = None
for a in argv[i:]:
    if a.startswith("-") and not a[1:2].isdigit():
        key = SHORT.get(a, a); opts.setdefault(key, [])
    else:
        opts[key].append(a)
cmd = " ".join(words)

def one(k, d=None):
    return (opts.get(k) or [d])[0]

def save():
    with open(STATE, "wb") as f:
        marshal.dump(state, f)

def fail(msg, code=1):
    sys.stderr.write("ERROR: " + msg + "\n"); sys.exit(code)

def new_id(kind):
    state["counter"] = state.get("counter", 0) + 1
    return "%08d-0000-4000-8000-%012d" % (state["counter"], len(kind))

def split_top(body):
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur.strip()); cur = ""; continue
        depth += (ch == "[") - (ch == "]")
        cur += ch
    return parts + [cur.strip()]

def ev(expr, data):
    # The JMESPath the script uses: a.b, [0], [], [?k=='v'], [x, y.z].
    if not expr:
        return data
    if expr[0] == ".":
        return ev(expr[1:], data)
    if expr.startswith("[?"):
        end = expr.index("]")
        k, v = expr[2:end].split("==")
        return project([x for x in (data or []) if x.get(k) == v.strip("'")], expr[end + 1:])
    if expr.startswith("[]"):
        return project(data or [], expr[2:])
    if expr[0] == "[":
        end = expr.index("]")
        if expr[1:end].isdigit():
            n = int(expr[1:end])
            return ev(expr[end + 1:], data[n] if isinstance(data, list) and len(data) > n else None)
        return [ev(part, data) for part in split_top(expr[1:-1])]
    n = 0
    while n < len(expr) and (expr[n].isalnum() or expr[n] == "_"):
        n += 1
    return ev(expr[n:], data.get(expr[:n]) if isinstance(data, dict) else None)

def project(items, rest):
    out = []
    for x in items:
        v = ev(rest, x)
        if v is None:
            continue
        out.extend(v) if isinstance(v, list) else out.append(v)
    return out

def to_json(o, ind=""):
    if isinstance(o, dict):
        inner = ind + "  "
        return "{\n" + ",\n".join(inner + to_json(k) + ": " + to_json(v, inner) for k, v in o.items()) + "\n" + ind + "}"
    if isinstance(o, list):
        inner = ind + "  "
        return "[\n" + ",\n".join(inner + to_json(v, inner) for v in o) + "\n" + ind + "]" if o else "[]"
    if o is None or isinstance(o, bool):
        return {None: "null", True: "true", False: "false"}[o]
    if isinstance(o, str):
        return '"' + o.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(o)

def cell(v):
    # az's tsv: a list in a row is its length, a dict is empty, others str()
    return str(len(v)) if isinstance(v, list) else "" if isinstance(v, dict) else str(v)

def emit(obj):
    if "--query" in opts:
        obj = ev(one("--query"), obj)
    fmt = one("--output", "json")
    if fmt == "none" or obj is None:
        return
    if fmt == "tsv":
        for row in (obj if isinstance(obj, list) else [obj]):
            if isinstance(row, dict):
                row = [v for _, v in sorted(row.items())]
            if isinstance(row, list):
                print("\t".join(cell(v) for v in row))
            else:
                print(str(row).lower() if isinstance(row, bool) else row)
    else:
        print(to_json(obj))

def not_found(what):
    fail("(ResourceNotFound) %s was not found." % what, 3)

failing = os.environ.get("AZ_FAKE_FAIL", "")
if failing and cmd.startswith(failing.split("|")[0]):
    fail(failing.split("|", 1)[1])

if cmd == "account show":
    if not state["logged_in"]:
        fail("Please run 'az login' to setup account.")
    emit({"id": SUB, "tenantId": TENANT, "user": {"name": "admin@contoso.example", "type": "user"}})
elif cmd == "group show":
    emit(state["groups"].get(one("--name")) or not_found("Resource group '%s'" % one("--name")))
elif cmd == "group create":
    state["groups"][one("--name")] = {"name": one("--name"), "location": one("--location")}
    save(); emit(state["groups"][one("--name")])
elif cmd == "extension list":
    emit([{"name": name, "version": v} for name, v in state["extensions"].items()])
elif cmd == "extension add":
    state["extensions"][one("--name")] = "2.30.0"; save()
elif cmd == "ml workspace show":
    emit(state["workspaces"].get(one("--name")) or not_found("Workspace '%s'" % one("--name")))
elif cmd == "ml workspace create":
    name, rg = one("--name"), one("--resource-group")
    state["workspaces"][name] = {
        "name": name, "location": one("--location"),
        "id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.MachineLearningServices/workspaces/%s"
              % (one("--subscription"), rg, name)}
    save(); emit(state["workspaces"][name])
elif cmd == "ad app show":
    emit(state["apps"].get(one("--id")) or not_found("Application '%s'" % one("--id")))
elif cmd == "ad app list":
    f = one("--filter", "")
    name = f[len("displayName eq '"):-1].replace("''", "'") if f.startswith("displayName eq '") else None
    emit([a for a in state["apps"].values() if a["displayName"] == name])
elif cmd == "ad app create":
    app_id = new_id("app")
    access = one("--required-resource-accesses")
    app = {"appId": app_id, "id": new_id("appobject"), "displayName": one("--display-name"),
           "signInAudience": one("--sign-in-audience"),
           "web": {"redirectUris": opts.get("--web-redirect-uris", []),
                   "implicitGrantSettings": {"enableIdTokenIssuance": one("--enable-id-token-issuance") == "true"}},
           "groupMembershipClaims": None, "passwords": 0,
           # the fake reads the one shape the script sends: Graph's User.Read
           "requiredResourceAccess": [{"resourceAppId": access.split('"resourceAppId": "')[1][:36],
                                       "resourceAccess": [{"id": access.split('"id": "')[1][:36], "type": "Scope"}]}]
                                     if access else []}
    state["apps"][app_id] = app; save(); emit(app)
elif cmd == "ad app update":
    app = state["apps"].get(one("--id")) or not_found("Application '%s'" % one("--id"))
    if "--web-redirect-uris" in opts:
        app["web"]["redirectUris"] = opts["--web-redirect-uris"]
    if "--enable-id-token-issuance" in opts:
        app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"] = one("--enable-id-token-issuance") == "true"
    for s in opts.get("--set", []):
        k, v = s.split("=", 1); app[k] = v
    save()
elif cmd == "ad app permission add":
    app = state["apps"][one("--id")]
    app["requiredResourceAccess"].append({"resourceAppId": one("--api"), "resourceAccess": [
        {"id": p.split("=")[0], "type": p.split("=")[1]} for p in opts["--api-permissions"]]})
    save()
elif cmd == "ad app credential reset":
    app = state["apps"][one("--id")]
    app["passwords"] += 1
    secret = "FAKE~SECRET.%s.%d" % (app["appId"][:8], app["passwords"])
    save(); emit({"appId": app["appId"], "password": secret, "tenant": TENANT})
elif cmd == "ad sp show":
    emit(state["sps"].get(one("--id")) or not_found("Service principal '%s'" % one("--id")))
elif cmd == "ad sp create":
    state["sps"][one("--id")] = {"id": new_id("sp"), "appId": one("--id")}
    save(); emit(state["sps"][one("--id")])
elif cmd == "ad group show":
    g = one("--group")
    for name, gid in state["aad_groups"].items():
        if g in (name, gid):
            emit({"id": gid, "displayName": name}); break
    else:
        fail("No group matches the name of '%s'" % g)
elif cmd == "identity show":
    emit(state["identities"].get(one("--name")) or not_found("Identity '%s'" % one("--name")))
elif cmd == "identity create":
    name = one("--name")
    state["identities"][name] = {
        "name": name, "clientId": new_id("mi-client"), "principalId": new_id("mi-principal"),
        "location": one("--location"),
        "id": "/subscriptions/%s/resourcegroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s"
              % (one("--subscription"), one("--resource-group"), name)}
    save(); emit(state["identities"][name])
elif cmd == "role assignment list":
    emit([r for r in state["roles"] if r["scope"] == one("--scope")
          and one("--role") in (None, r["roleDefinitionName"])])
elif cmd == "role assignment create":
    r = {"id": "/ra/%d" % len(state["roles"]), "principalId": one("--assignee-object-id"),
         "principalType": one("--assignee-principal-type"), "roleDefinitionName": one("--role"),
         "scope": one("--scope")}
    state["roles"].append(r); save(); emit(r)
else:
    fail("fake az does not know '%s'" % cmd, 2)
'''


class FakeAzure:
    """The fake CLI in ``directory``: its script, argv log and state."""

    def __init__(self, directory: Path, state: dict | None = None):
        self.dir = directory
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.log = directory / "az.log"
        self.state_file = directory / "az-state.marshal"
        az = self.bin / "az"
        az.write_text(FAKE_AZ.replace("__PYTHON__", sys.executable)
                      .replace("__SUB__", SUB).replace("__TENANT__", TENANT))
        az.chmod(0o755)
        self.state = state or {
            "logged_in": True, "groups": {}, "extensions": {}, "workspaces": {}, "apps": {}, "sps": {},
            "identities": {}, "roles": [],
            "aad_groups": {"Data Science": DATA_SCIENCE, "Hub Admins": HUB_ADMINS},
        }

    @property
    def state(self) -> dict:
        return marshal.loads(self.state_file.read_bytes())

    @state.setter
    def state(self, value: dict) -> None:
        self.state_file.write_bytes(marshal.dumps(value))

    def update(self, **kw) -> None:
        self.state = {**self.state, **kw}

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split("\x1f") for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        """Each call as its command words ("ad app create")."""
        out = []
        for argv in self.calls():
            words = []
            for a in argv:
                if a.startswith("-"):
                    break
                words.append(a)
            out.append(" ".join(words))
        return out

    def clear_log(self) -> None:
        if self.log.exists():
            self.log.unlink()

    def run(self, *args: str, env: dict | None = None, path_has_az: bool = True):
        """The real script, with this fake first on PATH."""
        e = {
            "PATH": (f"{self.bin}:" if path_has_az else "") + "/usr/bin:/bin",
            "HOME": str(self.dir),
            "TMPDIR": str(self.dir),
            "AZ_FAKE_STATE": str(self.state_file),
            "AZ_FAKE_LOG": str(self.log),
            "SETUP_AZURE_RETRY_SECONDS": "0",
            "LC_ALL": "C",
        }
        e.update(env or {})
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=e, timeout=60)

    @property
    def env_file(self) -> Path:
        return self.dir / "deploy" / ".env"

    def args(self, *extra: str, host: str = "hub.example.org") -> list[str]:
        """A full run's arguments, writing self.env_file."""
        self.env_file.parent.mkdir(exist_ok=True)
        return ["--host", host, "--env-file", str(self.env_file),
                "--allowed-group", "Data Science", "--admin-group", HUB_ADMINS, *extra]


def parse_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            values[k] = v
    return values


@pytest.fixture
def az(tmp_path) -> FakeAzure:
    return FakeAzure(tmp_path)


class FirstRun:
    def __init__(self, az: FakeAzure):
        self.az = az
        self.result = az.run(*az.args())
        assert self.result.returncode == 0, self.result.stderr + self.result.stdout
        self.env_text = az.env_file.read_text()
        self.env_mode = stat.S_IMODE(az.env_file.stat().st_mode)
        self.state = az.state
        self.calls = az.calls()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> FirstRun:
    """One full run on an empty Azure, shared (read-only) by the tests."""
    return FirstRun(FakeAzure(tmp_path_factory.mktemp("first")))


@pytest.fixture
def after_first(first_run, tmp_path) -> FakeAzure:
    """A fresh fake Azure and .env in the state the first run left."""
    az = FakeAzure(tmp_path, state=first_run.state)
    az.env_file.parent.mkdir()
    az.env_file.write_text(first_run.env_text)
    az.env_file.chmod(0o600)
    return az


def test_script_is_executable_bash():
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -Eeuo pipefail" in text


def test_help(az):
    r = az.run("--help", path_has_az=False)
    assert r.returncode == 0, r.stderr
    for flag in ("--host", "--resource-group", "--location", "--workspace", "--subscription", "--app-name",
                 "--identity", "--allowed-group", "--admin-group", "--dry-run", "make up"):
        assert flag in r.stdout
    assert az.calls() == []


def test_missing_host_is_one_clear_line(az):
    r = az.run("--workspace", "ws1")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "--host is required" in lines[0] and "hub.example.org" in lines[0]
    assert az.calls() == []


@pytest.mark.parametrize("args, message", [
    (["--host", "https://hub.example.org"], "not a URL"),
    (["--host", "localhost"], "is not a DNS name"),
    (["--host", "hub.example.org", "--identity", "password"], "--identity must be"),
    (["--host", "hub.example.org", "--workspace", "a b"], "not valid for Azure ML"),
    (["--host", "hub.example.org", "--bogus"], "unknown option '--bogus'"),
    (["--host"], "--host needs a value"),
])
def test_bad_arguments(az, args, message):
    r = az.run(*args)
    assert r.returncode != 0
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert az.calls() == []


def test_dry_run_writes_nothing_and_lists_commands(az):
    r = az.run(*az.args("--dry-run"))
    assert r.returncode == 0, r.stderr
    assert az.calls() == []  # nothing run, not even az account show
    assert list(az.env_file.parent.iterdir()) == []
    out = r.stdout
    for expected in ("az account show", "az group create --name rg-aml-jupyterhub --location westeurope",
                     "az extension add --name ml", "az ml workspace create --name mlw-aml-jupyterhub",
                     "az ad app create --display-name aml-jupyterhub-hub.example.org",
                     "--web-redirect-uris https://hub.example.org/hub/oauth_callback",
                     "--set groupMembershipClaims=SecurityGroup", "az ad sp create",
                     "az ad app credential reset", "az identity create --name id-aml-jupyterhub",
                     "--role 'AzureML Compute Operator' --scope '/subscriptions/",
                     "/workspaces/mlw-aml-jupyterhub", "would set: HOST LOCAL_MODE COMPOSE_PROFILES"):
        assert expected in out, expected


def test_dry_run_leaves_an_existing_env_alone(az):
    az.env_file.parent.mkdir()
    az.env_file.write_text("HOST=old.example.org\nAAD_CLIENT_ID=abc\n")
    az.env_file.chmod(0o644)
    r = az.run(*az.args("--dry-run"))
    assert r.returncode == 0, r.stderr
    assert az.env_file.read_text() == "HOST=old.example.org\nAAD_CLIENT_ID=abc\n"
    assert stat.S_IMODE(az.env_file.stat().st_mode) == 0o644
    assert "az ad app show --id abc" in r.stdout
    assert sorted(p.name for p in az.env_file.parent.iterdir()) == [".env"]
    assert az.calls() == []


def test_full_run_creates_env_from_example(first_run):
    text = first_run.env_text
    assert first_run.env_mode == 0o600
    # made from .env.example: its comments and untouched settings are there
    assert "# ---- Azure AD login" in text and "AML_CONNECT_MODE=proxy" in text
    values = parse_env(first_run.az.env_file)
    state = first_run.state
    (app,) = state["apps"].values()
    ident = state["identities"]["id-aml-jupyterhub"]
    assert values["HOST"] == "hub.example.org"
    assert values["LOCAL_MODE"] == "false"
    assert values["COMPOSE_PROFILES"] == ""
    assert values["AAD_TENANT_ID"] == TENANT
    assert values["AAD_CLIENT_ID"] == app["appId"]
    assert values["AAD_CLIENT_SECRET"].startswith("FAKE~SECRET.")
    assert values["AAD_ALLOWED_GROUPS"] == DATA_SCIENCE
    assert values["AAD_ADMIN_GROUPS"] == HUB_ADMINS
    assert values["AML_SUBSCRIPTION_ID"] == SUB
    assert values["AML_RESOURCE_GROUP"] == "rg-aml-jupyterhub"
    assert values["AML_WORKSPACE"] == "mlw-aml-jupyterhub"
    # managed identity: only its client id, so azure-identity picks the identity
    assert values["AZURE_CLIENT_ID"] == ident["clientId"]
    assert values["AZURE_TENANT_ID"] == "" and values["AZURE_CLIENT_SECRET"] == ""
    assert values["AML_CREDENTIAL"] == "managed-identity"
    assert values["AML_STATIC_TOKEN"] == "" and values["AAD_GROUP_NAMES"] == ""  # the demo's, gone
    # every key once
    keys = [line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert len(keys) == len(set(keys))
    # the hub's settings check accepts the result
    from aml_jupyterhub.hubconfig import load_settings
    settings = load_settings(values)
    assert settings["LOCAL_MODE"] is False and settings["AAD_ALLOWED_GROUPS"] == [DATA_SCIENCE]


def test_app_registration_is_what_the_login_needs(first_run):
    (app,) = first_run.state["apps"].values()
    assert app["displayName"] == "aml-jupyterhub-hub.example.org"
    assert app["web"]["redirectUris"] == ["https://hub.example.org/hub/oauth_callback"]
    assert app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"] is True
    assert app["groupMembershipClaims"] == "SecurityGroup"
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["requiredResourceAccess"] == [{"resourceAppId": "00000003-0000-0000-c000-000000000000",
                                              "resourceAccess": [{"id": USER_READ, "type": "Scope"}]}]
    assert app["appId"] in first_run.state["sps"]
    assert app["passwords"] == 1


def test_secret_is_never_printed_nor_on_a_command_line(first_run):
    secret = parse_env(first_run.az.env_file)["AAD_CLIENT_SECRET"]
    assert secret not in first_run.result.stdout and secret not in first_run.result.stderr
    assert all(secret not in arg for argv in first_run.calls for arg in argv)


def test_summary_and_next_step(first_run):
    out = first_run.result.stdout
    ident = first_run.state["identities"]["id-aml-jupyterhub"]
    assert out.rstrip().endswith("make up")
    assert "az vm identity assign" in out and ident["id"] in out
    assert "https://hub.example.org/hub/oauth_callback" in out
    assert "AzureML Compute Operator" in out


def test_role_assignments_target_the_workspace(first_run):
    ws_id = first_run.state["workspaces"]["mlw-aml-jupyterhub"]["id"]
    principal = first_run.state["identities"]["id-aml-jupyterhub"]["principalId"]
    creates = [argv for argv in first_run.calls if argv[:3] == ["role", "assignment", "create"]]
    assert len(creates) == 2
    roles = {}
    for argv in creates:
        opt = dict(zip(argv[3::2], argv[4::2]))
        assert opt["--scope"] == ws_id
        assert opt["--assignee-object-id"] == principal
        assert opt["--assignee-principal-type"] == "ServicePrincipal"
        roles[opt["--role"]] = opt
    # computes/* on the workspace, plus reading the workspace itself (azure-ai-ml reads it before a create)
    assert set(roles) == {"AzureML Compute Operator", "Reader"}


def test_second_run_is_idempotent(first_run, after_first):
    az = after_first
    r = az.run("--host", "hub.example.org", "--env-file", str(az.env_file))
    assert r.returncode == 0, r.stderr
    commands = az.commands()
    for creating in ("group create", "extension add", "ml workspace create", "ad app create", "ad app update",
                     "ad sp create", "ad app credential reset", "identity create", "role assignment create",
                     "ad app permission add"):
        assert creating not in commands, creating
    # it looked things up instead: the app by the id in .env, not by name
    for showing in ("account show", "group show", "ml workspace show", "ad app show", "ad sp show",
                    "identity show", "role assignment list"):
        assert showing in commands, showing
    assert "ad app list" not in commands
    assert az.state == first_run.state
    # same .env, groups kept although not given this time
    assert az.env_file.read_text() == first_run.env_text
    assert "kept the one in .env" in r.stdout
    assert "already assigned" in r.stdout


def test_existing_app_is_repaired_extended_and_given_a_missing_secret(after_first):
    # Someone broke the app's settings and blanked the secret in .env; the hub
    # also gets a second name.
    az = after_first
    state = az.state
    (app,) = state["apps"].values()
    app["groupMembershipClaims"] = None
    app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"] = False
    app["requiredResourceAccess"] = []
    az.state = state
    first = parse_env(az.env_file)["AAD_CLIENT_SECRET"]
    az.env_file.write_text(az.env_file.read_text().replace(f"AAD_CLIENT_SECRET={first}", "AAD_CLIENT_SECRET="))

    r = az.run(*az.args("--app-name", "aml-jupyterhub-hub.example.org", host="hub2.example.org"))
    assert r.returncode == 0, r.stderr
    assert "ad app create" not in az.commands() and "ad app list" not in az.commands()
    (app,) = az.state["apps"].values()
    assert app["groupMembershipClaims"] == "SecurityGroup"
    assert app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"] is True
    assert USER_READ in str(app["requiredResourceAccess"])
    # the redirect URI already there stays
    assert app["web"]["redirectUris"] == ["https://hub.example.org/hub/oauth_callback",
                                          "https://hub2.example.org/hub/oauth_callback"]
    # a new secret, appended so that the old one (wherever it is) keeps working
    resets = [argv for argv in az.calls() if argv[:4] == ["ad", "app", "credential", "reset"]]
    assert len(resets) == 1 and "--append" in resets[0]
    values = parse_env(az.env_file)
    assert values["AAD_CLIENT_SECRET"] and values["AAD_CLIENT_SECRET"] != first
    assert values["AAD_CLIENT_SECRET"] not in r.stdout + r.stderr
    assert values["HOST"] == "hub2.example.org"


def test_existing_env_keeps_other_lines_and_app_is_found_by_name(after_first):
    # an .env of someone's own, without the app's id: the app is found by its name
    az = after_first
    app_id = parse_env(az.env_file)["AAD_CLIENT_ID"]
    az.env_file.write_text(
        "# my deployment notes\n"
        "HOST=old.example.org\n"
        "MY_OWN_SETTING=keep me\n"
        "AML_CONNECT_MODE=redirect\n"
        "\n"
        "# a comment in the middle\n"
        "LOCAL_MODE=true\n"
        "HOST=duplicate.example.org\n"
        "HUB_IDLE_CULL_TIMEOUT=7200"  # no newline at the end
    )
    az.env_file.chmod(0o644)
    r = az.run(*az.args())
    assert r.returncode == 0, r.stderr
    lines = az.env_file.read_text().splitlines()
    assert lines[:9] == [
        "# my deployment notes",
        "HOST=hub.example.org",
        "MY_OWN_SETTING=keep me",
        "AML_CONNECT_MODE=redirect",
        "",
        "# a comment in the middle",
        "LOCAL_MODE=false",
        "HUB_IDLE_CULL_TIMEOUT=7200",
        "AAD_TENANT_ID=" + TENANT,
    ]
    assert stat.S_IMODE(az.env_file.stat().st_mode) == 0o600
    assert [line for line in lines if line.startswith("HOST=")] == ["HOST=hub.example.org"]
    # nothing else from .env.example was pulled in
    assert not any(line.startswith("EMULATOR_URL=") for line in lines)
    assert "ad app create" not in az.commands()
    lists = [argv for argv in az.calls() if argv[:3] == ["ad", "app", "list"]]
    assert any("displayName eq 'aml-jupyterhub-hub.example.org'" in argv for argv in lists)
    assert parse_env(az.env_file)["AAD_CLIENT_ID"] == app_id


def test_service_principal_mode(az):
    r = az.run(*az.args("--identity", "sp"))
    assert r.returncode == 0, r.stderr
    values = parse_env(az.env_file)
    state = az.state
    arm = [a for a in state["apps"].values() if a["displayName"] == "aml-jupyterhub-hub.example.org-arm"]
    assert len(arm) == 1
    assert values["AZURE_TENANT_ID"] == TENANT
    assert values["AZURE_CLIENT_ID"] == arm[0]["appId"]
    assert values["AZURE_CLIENT_SECRET"].startswith("FAKE~SECRET.")
    assert values["AZURE_CLIENT_SECRET"] != values["AAD_CLIENT_SECRET"]
    assert values["AML_CREDENTIAL"] == "service-principal"
    from aml_jupyterhub.hubconfig import load_settings
    assert load_settings(values)["AML_CREDENTIAL"] == "service-principal"
    assert state["identities"] == {}
    sp_object = state["sps"][arm[0]["appId"]]["id"]
    assert {r["principalId"] for r in state["roles"]} == {sp_object}
    assert {r["roleDefinitionName"] for r in state["roles"]} == {"AzureML Compute Operator", "Reader"}
    for secret in (values["AZURE_CLIENT_SECRET"], values["AAD_CLIENT_SECRET"]):
        assert secret not in r.stdout + r.stderr
    assert "az vm identity assign" not in r.stdout
    # again: nothing new
    az.clear_log()
    again = az.run(*az.args("--identity", "sp"))
    assert again.returncode == 0, again.stderr
    assert not {"ad app credential reset", "ad app create", "role assignment create"} & set(az.commands())
    assert parse_env(az.env_file) == values


def test_existing_resources_are_reused(az):
    az.update(
        groups={"rg-research": {"name": "rg-research", "location": "uksouth"}},
        extensions={"ml": "2.30.0"},
        workspaces={"mlw-research": {"name": "mlw-research", "location": "uksouth",
                                     "id": "/subscriptions/x/resourceGroups/rg-research/providers/"
                                           "Microsoft.MachineLearningServices/workspaces/mlw-research"}},
    )
    r = az.run(*az.args("--resource-group", "rg-research", "--workspace", "mlw-research"))
    assert r.returncode == 0, r.stderr
    commands = az.commands()
    assert not {"group create", "ml workspace create", "extension add"} & set(commands)
    # a new identity goes where the resource group is
    assert az.state["identities"]["id-aml-jupyterhub"]["location"] == "uksouth"
    assert all(r["scope"].endswith("/workspaces/mlw-research") for r in az.state["roles"])
    values = parse_env(az.env_file)
    assert (values["AML_RESOURCE_GROUP"], values["AML_WORKSPACE"]) == ("rg-research", "mlw-research")


def test_old_ml_extension_is_refused(az):
    az.update(extensions={"azure-cli-ml": "1.41.0"})
    r = az.run(*az.args())
    assert r.returncode == 1
    assert "az extension remove -n azure-cli-ml" in r.stderr


def test_not_logged_in_gives_the_az_login_hint(az):
    az.update(logged_in=False)
    r = az.run(*az.args())
    assert r.returncode == 1
    assert r.stderr.strip() == "setup-azure: error: not logged in to Azure: run az login, then run this again"
    assert not az.env_file.exists()
    assert az.commands() == ["account show"]


def test_az_missing(az):
    r = az.run(*az.args(), path_has_az=False)
    assert r.returncode == 1
    assert "Azure CLI (az) is not installed" in r.stderr


def test_unknown_group_is_a_clear_error(az):
    r = az.run("--host", "hub.example.org", "--env-file", str(az.dir / ".env"), "--allowed-group", "Nobody Here")
    assert r.returncode == 1
    assert "group 'Nobody Here' not found" in r.stderr


def test_failed_role_assignment_says_what_to_do(az):
    message = ("(AuthorizationFailed) The client does not have authorization to perform action "
               "'Microsoft.Authorization/roleAssignments/write'")
    r = az.run(*az.args(), env={"AZ_FAKE_FAIL": "role assignment create|" + message})
    assert r.returncode == 1
    assert "AuthorizationFailed" in r.stderr
    assert "User Access Administrator" in r.stderr
    assert "az role assignment create" in r.stderr
    # what was made so far is kept: the new login secret is not lost
    values = parse_env(az.env_file)
    assert values["AAD_CLIENT_SECRET"].startswith("FAKE~SECRET.")
    assert values["AAD_CLIENT_SECRET"] not in r.stdout + r.stderr


def test_role_assignment_retried_while_identity_replicates(az):
    # ARM does not know a just-made identity for a while: the first attempt says PrincipalNotFound
    marker = az.dir / "replicated"
    real = az.bin / "az-real"
    (az.bin / "az").rename(real)
    (az.bin / "az").write_text(
        "#!/bin/bash\n"
        f'if [ "$1 $2 $3" = "role assignment create" ] && [ ! -e {marker} ]; then\n'
        f"  touch {marker}\n"
        "  echo 'ERROR: (PrincipalNotFound) Principal abc does not exist in the directory.' >&2; exit 1\n"
        "fi\n"
        f'exec {real} "$@"\n')
    (az.bin / "az").chmod(0o755)
    r = az.run(*az.args())
    assert r.returncode == 0, r.stderr
    assert "not visible to Azure RBAC yet" in r.stdout
    assert len(az.state["roles"]) == 2
