"""``aml-jupyterhub-doctor``: a deployment checked before users arrive.

    docker compose run --rm hub aml-jupyterhub-doctor      (or: make doctor)

One line per check, ``ok``, ``FAIL`` (with the fix) or ``skip`` (with why),
and exit status 1 if any check failed. It reads the settings as the hub
does (the same ``configure()``), then asks, in the order a login and a spawn
need them: Azure AD (the tenant's discovery document, the app and its
secret, the redirect URI), the ARM credential, the workspace, the hub
identity's permissions on it, each profile's size in the region and its
quota, the SSH path to a running instance of this hub, the tunnel service,
and the public host name. It changes nothing in Azure: only reads (and
Azure AD's token endpoint).

The judgements (what a refusal means, which actions are missing, whether a
quota leaves room) are pure functions; the rest is a thin layer of HTTP and
SDK reads, each with a timeout.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Mapping

REQUIRED_ACTIONS = (
    "Microsoft.MachineLearningServices/workspaces/computes/read",
    "Microsoft.MachineLearningServices/workspaces/computes/write",
    "Microsoft.MachineLearningServices/workspaces/computes/delete",
    "Microsoft.MachineLearningServices/workspaces/computes/start/action",
    "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
    "Microsoft.MachineLearningServices/workspaces/computes/restart/action",
)
RESIZE_ACTION = "Microsoft.MachineLearningServices/workspaces/computes/resize/action"

AADSTS_MEANING = {
    "90002": "the tenant does not exist in this cloud: check AAD_TENANT_ID (and AZURE_CLOUD)",
    "700016": "the app is not registered in this tenant: check AAD_CLIENT_ID and AAD_TENANT_ID",
    "7000215": "the client secret is wrong: put the app's current secret value (not its id) in AAD_CLIENT_SECRET",
    "7000222": "the client secret has expired: make a new one and put it in AAD_CLIENT_SECRET",
    "50011": "the app's redirect URI is not https://HOST/hub/oauth_callback: add it to the app registration "
             "(hub/setup-azure.sh --host does) or fix HOST",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, fail, skip
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}[self.status]
        text = f"{mark} {self.name}: {self.detail}"
        return text + (f"\n     fix: {self.fix}" if self.fix and self.status == "fail" else "")


# ---- judgements (pure) -------------------------------------------------------


def aad_refusal(body: str) -> str | None:
    """The AADSTS code an Azure AD answer carries, if any."""
    m = re.search(r"AADSTS(\d+)", body or "")
    return m.group(1) if m else None


def aad_fix(code: str) -> str:
    return AADSTS_MEANING.get(code, f"see https://login.microsoftonline.com/error?code={code}")


def _matches(pattern: str, action: str) -> bool:
    # ARM's wildcard: '*' any run of characters, case-insensitive; '/*/' also one '/'
    body = ".*".join(re.escape(p) for p in pattern.split("*")).replace("/.*/", "(?:/.*/|/)")
    return re.fullmatch(body, action, re.I) is not None


def missing_actions(permissions: list[dict], required) -> list[str]:
    """The required actions no permission entry grants (an entry's notActions take back its actions)."""
    def granted(action: str) -> bool:
        return any(any(_matches(p, action) for p in entry.get("actions", []))
                   and not any(_matches(p, action) for p in entry.get("notActions", []))
                   for entry in permissions)

    return [a for a in required if not granted(a)]


def quota_problem(size, usages: list, label: str) -> str:
    """Why one more instance of ``size`` would not fit in the region's quota, or ""."""
    needed = size.vcpus or 0
    for u in usages:
        if size.family and u.name.lower() == size.family.lower() and u.limit >= 0 and u.limit - u.current < needed:
            return (f"{label} needs {needed} vCPUs of {u.display_name or u.name}, which has {u.limit - u.current} "
                    f"free ({u.current} of {u.limit} in use)")
    return ""


def ssh_target(info, address: str, port_setting: int) -> tuple[str | None, int | None]:
    host = info.private_ip if address == "private" else info.public_ip
    return host, port_setting or info.ssh_port


# ---- I/O ------------------------------------------------------------------------


def http(url: str, *, data: dict | None = None, headers: dict | None = None, cafile: str | None = None,
         timeout: float = 15) -> tuple[int, str]:
    """(status, body) of one request; status 0 and the reason when it does not connect."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=timeout) as r:
            return r.status, r.read(200_000).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(200_000).decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(getattr(e, "reason", e))


def ssh_banner(host: str, port: int, timeout: float = 8) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        return sock.recv(256).decode(errors="replace").strip()


class Doctor:
    def __init__(self, environ: Mapping[str, str], *, timeout: float = 15):
        self.environ = dict(environ)
        self.timeout = timeout
        self.checks: list[Check] = []

    def add(self, name: str, status: str, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    def run(self) -> list[Check]:
        if not self.settings():
            return self.checks
        for step in (self.azure_ad, self.credential, self.workspace, self.permissions, self.sizes_and_quota,
                     self.ssh_path, self.tunnels, self.host):
            try:
                step()
            except Exception as e:  # one broken check must not hide the others
                self.add(step.__name__.replace("_", " "), "fail", f"the check itself failed: {type(e).__name__}: {e}")
        return self.checks

    # -- settings, as the hub reads them

    def settings(self) -> bool:
        from traitlets.config import Config

        from .config import AMLSettings
        from .hubconfig import ConfigError, configure, load_settings

        try:
            self.values = load_settings(self.environ)
            scratch = Config()
            configure(scratch, self.values, environ=dict(self.environ))
        except ConfigError as e:
            self.add("settings", "fail", str(e), "fix the variable in .env, then run the doctor again")
            return False
        traits = AMLSettings.class_own_traits(config=True)
        self.spawner = AMLSettings(**{k: v for k, v in scratch.AMLSpawner.items() if k in traits})
        self.local = self.values["LOCAL_MODE"]
        mode = "local mode (the emulator)" if self.local else f"Azure ({self.values['AZURE_CLOUD']} cloud)"
        self.add("settings", "ok", f"read as the hub reads them: {mode}, connect mode {self.spawner.connect_mode}")
        return True

    # -- Azure AD

    def _login(self) -> tuple[str, str | None]:
        from .clouds import cloud

        if self.local:
            return self.values["EMULATOR_URL"].rstrip("/"), self.values["EMULATOR_CA"] or None
        return cloud(self.values["AZURE_CLOUD"]).login, None

    def azure_ad(self) -> None:
        login, ca = self._login()
        tenant, client = self.values["AAD_TENANT_ID"], self.values["AAD_CLIENT_ID"]
        status, body = http(f"{login}/{tenant}/v2.0/.well-known/openid-configuration", cafile=ca, timeout=self.timeout)
        if status != 200:
            code = aad_refusal(body)
            self.add("Azure AD tenant", "fail", f"{login} answers {status or body} for tenant {tenant}"
                     + (f" (AADSTS{code})" if code else ""), aad_fix(code) if code else
                     "check AAD_TENANT_ID and that the hub reaches the login host")
            return
        issuer = json.loads(body).get("issuer", "")
        self.add("Azure AD tenant", "ok", f"{tenant}: discovery document found (issuer {issuer})")
        status, body = http(f"{login}/{tenant}/oauth2/v2.0/token", cafile=ca, timeout=self.timeout, data={
            "grant_type": "client_credentials", "client_id": client,
            "client_secret": self.environ.get("AAD_CLIENT_SECRET", ""), "scope": "https://graph.microsoft.com/.default"})
        code = aad_refusal(body)
        if status == 200:
            self.add("Azure AD app", "ok", f"app {client} signs in with its secret")
        else:
            self.add("Azure AD app", "fail", f"the token endpoint refused app {client}"
                     + (f" (AADSTS{code})" if code else f" ({status})"), aad_fix(code) if code else "")
        redirect = f"https://{self.values['HOST']}" + (f":{self.values['HTTPS_PORT']}"
                                                      if self.values["HTTPS_PORT"] not in (None, 443) else "")
        redirect += "/hub/oauth_callback"
        query = urllib.parse.urlencode({"client_id": client, "response_type": "code", "redirect_uri": redirect,
                                        "scope": "openid", "state": "doctor"})
        status, body = http(f"{login}/{tenant}/oauth2/authorize?{query}", cafile=ca, timeout=self.timeout)
        code = aad_refusal(body)
        if code:
            self.add("redirect URI", "fail", f"Azure AD refuses {redirect} (AADSTS{code})", aad_fix(code))
        elif status in (200, 302):
            self.add("redirect URI", "ok", f"{redirect} is registered for the app")
        else:
            self.add("redirect URI", "fail", f"the authorize page answered {status or body}", "")

    # -- ARM

    def _credential(self):
        from .clients import credential_for

        if not hasattr(self, "_cred"):
            self._cred = credential_for(self.spawner, _log())
        return self._cred

    def _ml(self):
        from .clouds import cloud
        from .compute import make_ml_client

        if not hasattr(self, "_ml_client"):
            s = self.spawner
            self._ml_client = make_ml_client(
                self._credential(), s.subscription_id, s.resource_group, s.workspace_name,
                cloud_name=cloud(s.azure_cloud).sdk_name, arm_endpoint=s.arm_endpoint or None,
                ca_bundle=s.ca_bundle or None, retry_total=1, read_timeout=self.timeout)
        return self._ml_client

    def credential(self) -> None:
        import time

        from .clouds import cloud

        s = self.spawner
        arm = s.arm_endpoint or cloud(s.azure_cloud).arm
        try:
            token = self._credential().get_token(f"{cloud(s.azure_cloud).arm}/.default")
        except Exception as e:
            self.ok_credential = False
            self.add("ARM credential", "fail", f"{s.credential_type} could not get a token: {str(e).splitlines()[0]}",
                     "on Azure: give the hub VM a managed identity (AML_CREDENTIAL=managed-identity) or set the "
                     "AZURE_* service principal; see Going to Azure in README")
            return
        self.ok_credential = True
        self.add("ARM credential", "ok", f"{s.credential_type} gets a token for {arm}"
                 + (f" (valid for {max(0, token.expires_on - int(time.time())) // 60} min)" if token.expires_on else ""))

    def workspace(self) -> None:
        s = self.spawner
        self.region = None
        if not getattr(self, "ok_credential", False):
            self.add("workspace", "skip", "no ARM token")
            return
        try:
            ws = self._ml().workspaces.get(s.workspace_name)
        except Exception as e:
            message = _first_line(e)
            fix = ("check AML_SUBSCRIPTION_ID, AML_RESOURCE_GROUP and AML_WORKSPACE"
                   if "not found" in message.lower() or "ResourceNotFound" in message else
                   "give the hub's identity the Reader role on the workspace (hub/setup-azure.sh does)")
            self.add("workspace", "fail", f"{s.workspace_name} in {s.resource_group}: {message}", fix)
            return
        self.region = (ws.location or "").lower()
        self.add("workspace", "ok", f"{s.workspace_name} (resource group {s.resource_group}) answers, region {self.region}")

    def permissions(self) -> None:
        from .clouds import cloud

        s = self.spawner
        if self.region is None:
            self.add("roles", "skip", "the workspace did not answer")
            return
        arm = (s.arm_endpoint or cloud(s.azure_cloud).arm).rstrip("/")
        scope = (f"/subscriptions/{s.subscription_id}/resourceGroups/{s.resource_group}/providers/"
                 f"Microsoft.MachineLearningServices/workspaces/{s.workspace_name}")
        token = self._credential().get_token(f"{cloud(s.azure_cloud).arm}/.default").token
        status, body = http(f"{arm}{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01",
                            headers={"Authorization": f"Bearer {token}"}, cafile=s.ca_bundle or None,
                            timeout=self.timeout)
        if status != 200:
            self.add("roles", "fail", f"ARM answered {status or body} for the hub's permissions on the workspace",
                     "give the hub's identity AzureML Compute Operator and Reader on the workspace")
            return
        required = list(REQUIRED_ACTIONS) + ([RESIZE_ACTION] if s.resize_instances else [])
        missing = missing_actions(json.loads(body).get("value", []), required)
        if missing:
            from .compute.permissions import role_for

            roles = sorted({role_for(a) for a in missing})
            self.add("roles", "fail", "the hub's identity may not " + ", ".join(
                a.split("/computes/")[-1].replace("/action", "") for a in missing) + " compute instances",
                f"assign {' and '.join(roles)} to the hub's identity on workspace {s.workspace_name} "
                "(hub/setup-azure.sh does)")
        else:
            self.add("roles", "ok", "the hub's identity may create, start, stop, "
                     + ("resize, " if s.resize_instances else "") + "restart and delete compute instances")

    def sizes_and_quota(self) -> None:
        from .compute.models import Usage, VmSize
        from .profiles import parse_profiles

        if self.region is None:
            self.add("sizes", "skip", "the workspace did not answer")
            return
        ml = self._ml()
        try:
            sizes = {z.name.lower(): VmSize.from_entity(z)
                     for z in ml.compute.list_sizes(location=self.region, compute_type="ComputeInstance")}
            usages = [Usage.from_entity(u) for u in ml.compute.list_usage(location=self.region)]
        except Exception as e:
            self.add("sizes", "fail", f"cannot read the region's sizes and quotas: {_first_line(e)}",
                     "give the hub's identity Reader on the subscription (vmSizes and usages are read there)")
            return
        profiles = parse_profiles(self.spawner.profiles)
        absent = [p for p in profiles if p.vm_size.lower() not in sizes]
        if absent:
            self.add("sizes", "fail", ", ".join(f"{p.slug} ({p.vm_size})" for p in absent)
                     + f" not offered for compute instances in {self.region}",
                     "pick sizes the region offers in AML_PROFILES_FILE (users never see these profiles)")
        else:
            self.add("sizes", "ok", f"every profile's size is offered in {self.region}: "
                     + ", ".join(p.vm_size for p in profiles))
        short = [quota_problem(sizes[p.vm_size.lower()], usages, f"{p.slug} ({p.vm_size})")
                 for p in profiles if p.vm_size.lower() in sizes]
        short = [s for s in short if s]
        if short:
            self.add("quota", "fail", "; ".join(short),
                     "request more vCPU quota for the family in the Azure portal (Quotas), or stop instances")
        else:
            self.add("quota", "ok", "each profile's family has room for one more instance")

    def ssh_path(self) -> None:
        from . import ownership
        from .compute.models import InstanceInfo
        from .keys import load_or_create_hub_id

        s = self.spawner
        if s.connect_mode == "redirect":
            self.add("SSH", "skip", "redirect mode does not use SSH")
            return
        if s.ssh_address == "public" and not s.enable_public_ip:
            self.add("SSH", "fail", "AML_SSH_ADDRESS=public but instances get no public IP (AML_ENABLE_PUBLIC_IP=false)",
                     "set AML_SSH_ADDRESS=private (the hub in the instances' VNet)")
            return
        if self.region is None:
            self.add("SSH", "skip", "the workspace did not answer")
            return
        hub_id = load_or_create_hub_id(s.secrets_dir) if not s.hub_id else s.hub_id
        running = [InstanceInfo.from_entity(ci) for ci in self._ml().compute.list(compute_type="ComputeInstance")]
        mine = [i for i in running if i.is_running
                and (ownership.owner_of(i.tags) or ownership.Owner("", "", "")).hub == hub_id]
        if not mine:
            self.add("SSH", "skip", "no instance of this hub runs to try; start a server and run the doctor again")
            return
        info = mine[0]
        host, port = ssh_target(info, s.ssh_address, s.ssh_port)
        if not host or not port:
            self.add("SSH", "fail", f"{info.name} has no {s.ssh_address} address and SSH port",
                     "set AML_SSH_ADDRESS to the address the hub can reach")
            return
        try:
            banner = ssh_banner(host, port, timeout=min(8, self.timeout))
        except OSError as e:
            self.add("SSH", "fail", f"cannot reach {info.name} at {host}:{port} ({e.strerror or e})",
                     "allow the hub's address to the instances' SSH port (50000 on a public IP) in the NSG, or "
                     "with the hub in their VNet set AML_SSH_ADDRESS=private")
            return
        if not banner.startswith("SSH-"):
            self.add("SSH", "fail", f"{host}:{port} answers, but not as SSH ({banner[:40]!r})", "check AML_SSH_PORT")
            return
        self.add("SSH", "ok", f"{info.name} at {host}:{port} answers ({banner[:40]})")

    def tunnels(self) -> None:
        url = self.spawner.tunnel_service_url
        if not url or self.spawner.connect_mode != "proxy":
            self.add("tunnel service", "skip", "not used (tunnels in the hub process, or not proxy mode)")
            return
        token = self.spawner.tunnel_service_token
        status, body = http(f"{url.rstrip('/')}/tunnels", headers={"Authorization": f"token {token}"},
                            timeout=self.timeout)
        if status == 200:
            self.add("tunnel service", "ok", f"{url} answers ({len(json.loads(body).get('tunnels') or {})} tunnels open)")
        else:
            self.add("tunnel service", "fail", f"{url} answers {status or body}",
                     "start the tunnels container (docker compose up -d tunnels); it shares the proxy's token")

    def host(self) -> None:
        host = self.values["HOST"]
        try:
            addresses = sorted({a[4][0] for a in socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)})
        except OSError as e:
            self.add("HOST", "fail", f"{host} does not resolve ({e})",
                     "point a DNS record of HOST at this VM's public IP")
            return
        import ipaddress

        local = host == "localhost" or all(ipaddress.ip_address(a).is_loopback for a in addresses)
        if local:
            self.add("HOST", "ok", f"{host}: Caddy serves it with its internal CA (local)")
            return
        private = [a for a in addresses if not ipaddress.ip_address(a).is_global]
        if private:
            self.add("HOST", "fail", f"{host} resolves to {', '.join(private)}, not a public address",
                     "Caddy's automatic HTTPS (Let's Encrypt) needs HOST to resolve to this VM's public IP, "
                     "with ports 80 and 443 open")
            return
        self.add("HOST", "ok", f"{host} resolves to {', '.join(addresses)}")
        status, body = http("http://caddy/hub/health", headers={"Host": host}, timeout=5)
        if status in (301, 302, 307, 308):
            self.add("Caddy", "ok", f"serves {host} (plain HTTP redirects to HTTPS)")
        elif status == 0:
            self.add("Caddy", "skip", f"cannot reach the caddy container from here ({body})")
        else:
            self.add("Caddy", "fail", f"answers {status} for {host}", "check HOST and the Caddyfile")


def _first_line(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return text.strip().splitlines()[0][:300] if text.strip() else type(e).__name__


def _log():
    import logging

    return logging.getLogger("aml_jupyterhub.doctor")


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None,
         out: Callable[[str], None] = print) -> int:
    if environ is None:
        from .settings import ConfigError, take_launcher_secrets

        environ = os.environ
        try:
            take_launcher_secrets(environ)  # the image's entrypoint hands them over so (make doctor)
        except ConfigError as e:
            out(f"aml-jupyterhub-doctor: {e}")
            return 1
    checks = Doctor(environ).run()
    for c in checks:
        out(c.line())
    failed = [c for c in checks if c.status == "fail"]
    out(f"{len(checks) - len(failed)} of {len(checks)} checks passed" + (f", {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
