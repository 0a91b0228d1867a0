"""The real clients against the emulated Azure AD, over HTTPS.

- A real JupyterHub (subprocess) with oauthenticator's ``AzureAdOAuthenticator``
  logs users in through the emulator's login page. configurable-http-proxy is
  not needed: an in-memory Proxy class stands in, and the browser (``requests``)
  talks to the hub's own port.
- azure-identity's ``ClientSecretCredential`` (MSAL) gets an ARM token from the
  emulator's v2 token endpoint, and the emulator verifies it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from urllib.parse import quote, urlsplit

import pytest
import requests
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.login import FormParser
from aml_emulator.aad import AzureAD, IdentityConfig

CONFIG = IdentityConfig.load(None)
TID = CONFIG.tenant_id
APP = CONFIG.apps[0]
GROUP = {g.display_name: g.id for g in CONFIG.groups}
USERS = {u.username: u for u in CONFIG.users}
HUB_CLIENT_ID = "hub-integration-test"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(tmp_path):
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aad-test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class Emulator:
    """The emulated Azure AD over HTTPS on 127.0.0.1, in a background thread."""

    def __init__(self, tmp_path):
        self.ca, cert, key = make_tls(tmp_path)
        self.aad = AzureAD(CONFIG, tmp_path / "aad-keys")
        self.requests = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        @web.middleware
        async def record(request, handler):
            self.requests.append(f"{request.method} {request.path}")
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.aad.add_routes(app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app)
        port = free_port()

        async def start():
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", port, ssl_context=ctx).start()

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.base = f"https://127.0.0.1:{port}"

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("aad-emulator"))
    yield emu
    emu.close()


HUB_CONFIG = """
from jupyterhub.proxy import Proxy

class MemoryProxy(Proxy):
    # no configurable-http-proxy: the tests talk to the hub's own port
    should_start = False
    routes = {{}}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {{"routespec": routespec, "target": target, "data": data}}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)

c.JupyterHub.proxy_class = MemoryProxy
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.authenticator_class = "azuread"
c.AzureAdOAuthenticator.graph_url = "{graph_url}"
c.AzureAdOAuthenticator.tenant_id = "{tenant_id}"
c.AzureAdOAuthenticator.client_id = "{client_id}"
c.AzureAdOAuthenticator.client_secret = "{client_secret}"
c.AzureAdOAuthenticator.oauth_callback_url = "{callback}"
c.AzureAdOAuthenticator.http_request_kwargs = {{"ca_certs": "{ca}"}}
c.AzureAdOAuthenticator.username_claim = "upn"
c.AzureAdOAuthenticator.manage_groups = True
c.AzureAdOAuthenticator.allowed_groups = {{"{allowed_group}"}}
c.AzureAdOAuthenticator.admin_groups = {{"{admin_group}"}}
c.Authenticator.enable_auth_state = True
c.JupyterHub.services = [{{"name": "aad-test", "api_token": "{api_token}"}}]
c.JupyterHub.load_roles = [{{"name": "aad-test", "services": ["aad-test"],
                             "scopes": ["admin:users", "admin:auth_state", "list:users"]}}]
"""


@pytest.fixture(scope="module")
def hub(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    hub_port, proxy_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    callback = f"{hub_url}/hub/oauth_callback"
    client_id, client_secret = HUB_CLIENT_ID, "hub-integration-secret"
    # the hub's port is random, so its redirect URI is registered through the control API
    resp = requests.post(f"{emulator.base}/_emulator/aad/apps", verify=str(emulator.ca),
                         json={"client_id": client_id, "client_secret": client_secret, "redirect_uris": [callback]})
    assert resp.status_code == 201, resp.text
    api_token = os.urandom(16).hex()
    (tmp / "jupyterhub_config.py").write_text(textwrap.dedent(HUB_CONFIG.format(
        hub_port=hub_port, proxy_port=proxy_port, tmp=tmp, graph_url=emulator.base, tenant_id=TID,
        client_id=client_id, client_secret=client_secret, callback=callback, ca=emulator.ca,
        allowed_group=GROUP["Data Science"], admin_group=GROUP["Hub Admins"], api_token=api_token,
    )))
    env = dict(os.environ, JUPYTERHUB_CRYPT_KEY=os.urandom(32).hex())
    log_path = tmp / "hub.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(tmp / "jupyterhub_config.py")],
                                cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{hub_url}/hub/api", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterHub did not start:\n" + log_path.read_text())
            time.sleep(0.2)

        class Hub:
            url = hub_url
            token = api_token
            log = log_path

        yield Hub
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hub_login(emulator, hub, username: str) -> tuple[requests.Session, requests.Response]:
    """A browser's login: hub -> emulator login page -> form -> hub callback."""
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE would override the CA set here
    s.verify = str(emulator.ca)
    resp = s.get(f"{hub.url}/hub/oauth_login?next=/hub/home", allow_redirects=False)
    assert resp.status_code == 302
    authorize = resp.headers["Location"]
    assert authorize.startswith(f"{emulator.base}/{TID}/oauth2/authorize?")
    page = s.get(authorize)
    assert page.status_code == 200 and "Local Azure AD emulator" in page.text
    form = FormParser()
    form.feed(page.text)
    fields = dict(form.fields)
    fields.update(username=username, password=f"{username}-password")
    resp = s.post(emulator.base + form.action, data=fields, allow_redirects=False)
    assert resp.status_code == 302, resp.text
    assert resp.headers["Location"].startswith(f"{hub.url}/hub/oauth_callback?code=")
    assert "; Secure" in resp.headers["Set-Cookie"]  # the emulator's SSO cookie, over HTTPS
    return s, s.get(resp.headers["Location"], allow_redirects=False)


def hub_api(hub, path):
    return requests.get(f"{hub.url}/hub/api{path}", headers={"Authorization": f"token {hub.token}"})


def test_hub_login_with_upn_and_groups(emulator, hub):
    before = len(emulator.requests)
    s, done = hub_login(emulator, hub, "alice")
    assert done.status_code == 302, hub.log.read_text()[-3000:]
    assert urlsplit(done.headers["Location"]).path == "/hub/home"
    # the hub made exactly one call of its own: the token request
    assert [r for r in emulator.requests[before:] if "/oauth2/token" in r] == [f"POST /{TID}/oauth2/token"]
    me = s.get(f"{hub.url}/hub/api/user").json()
    assert me["name"] == "alice@aml-local.example"
    assert me["admin"] is False
    assert me["groups"] == [GROUP["Data Science"]]
    user = hub_api(hub, "/users/alice@aml-local.example").json()
    state = user["auth_state"]
    assert state["user"]["oid"] == USERS["alice"].oid
    assert state["scope"] == ["User.Read"]
    assert state["refresh_token"] and state["id_token"]
    # what the hub stored verifies against the emulator's keys
    assert emulator.aad.verify_token(state["id_token"], HUB_CLIENT_ID)["upn"] == "alice@aml-local.example"


def test_hub_admin_group_makes_admin(emulator, hub):
    s, done = hub_login(emulator, hub, "carol")
    assert done.status_code == 302
    me = s.get(f"{hub.url}/hub/api/user").json()
    assert me["name"] == "carol@aml-local.example" and me["admin"] is True


def test_hub_refuses_user_outside_allowed_groups(emulator, hub):
    _, done = hub_login(emulator, hub, "dave")
    assert done.status_code == 403
    assert hub_api(hub, "/users/dave@aml-local.example").status_code == 404


def test_hub_guest_username(emulator, hub):
    s, done = hub_login(emulator, hub, "erin")
    assert done.status_code == 302, hub.log.read_text()[-3000:]
    name = s.get(f"{hub.url}/hub/api/user").json()["name"]
    assert name == "erin_contoso.example#ext#@aml-local.example"  # the hub lowercases
    assert hub_api(hub, "/users/" + quote(name, safe="")).status_code == 200


def test_azure_identity_client_secret_credential(emulator):
    from azure.identity import ClientSecretCredential

    cred = ClientSecretCredential(
        TID,
        APP.client_id,
        APP.client_secret,
        authority=emulator.base,
        # MSAL would ask login.microsoftonline.com whether the authority is known
        disable_instance_discovery=True,
        connection_verify=str(emulator.ca),
    )
    tok = cred.get_token("https://management.azure.com/.default")
    claims = emulator.aad.verify_token(tok.token, "https://management.azure.com/")
    assert claims["appid"] == APP.client_id
    assert tok.expires_on > time.time()
