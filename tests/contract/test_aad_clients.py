"""The real Azure AD clients the product builds on, against the emulated
Azure AD over HTTPS (in a thread, so that every request it gets is seen):

- oauthenticator's stock ``AzureAdOAuthenticator`` in a real JupyterHub: the
  contract the product's ``VerifiedAzureAdOAuthenticator`` relies on (the hub
  logs in with the product's class: tests/integration/test_hub_login.py);
- azure-identity's ``ClientSecretCredential`` (MSAL) getting an ARM token
  from the v2 token endpoint, which the emulator then verifies.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from aml_emulator.aad import AzureAD
from tests.harness.hub import Hub, config_lines, product_login_traits
from tests.harness.identity import APP, GROUPS, IDENTITY, TENANT_ID, USERS
from tests.harness.login import browser, hub_login
from tests.harness.net import ServerThread
from tests.harness.tls import make_tls, server_context


class TlsAzureAD:
    """The emulated Azure AD over HTTPS on 127.0.0.1, recording (method, path, from a browser?) of each request."""

    def __init__(self, directory):
        ca, cert, key = make_tls(directory / "tls")
        self.ca_file = str(ca)
        self.aad = AzureAD(IDENTITY, directory / "aad-keys")
        self.requests: list[tuple[str, str, bool]] = []

        @web.middleware
        async def record(request, handler):
            by_browser = request.headers.get("User-Agent", "").startswith("python-requests/")
            self.requests.append((request.method, request.path, by_browser))
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.aad.add_routes(app)
        self.threads = ServerThread()
        self.base_url = self.threads.serve(app, server_context(cert, key))


@pytest.fixture(scope="module")
def tls_aad(tmp_path_factory):
    """Not ``emulator``: that is the session's emulator process."""
    idp = TlsAzureAD(tmp_path_factory.mktemp("tls-aad"))
    yield idp
    idp.threads.close()


def test_stock_azuread_oauthenticator_contract(tls_aad, tmp_path):
    """What the product's subclass takes from oauthenticator's class, given
    the configuration the product gives its subclass (less the subclass's own
    settings): one token request is the hub's only call (no Graph call, no
    userinfo), the name is the ``upn`` claim, ``groups`` are the id_token's
    group ids, and auth_state keeps the claims (``user``), the id_token and a
    refresh token. The stock class checks nothing of the id_token: why the
    product has a subclass."""
    from oauthenticator.azuread import AzureAdOAuthenticator

    hub = Hub(tmp_path / "hub")
    _, traits = product_login_traits(hub.url, tmp_path / "settings", tls_aad,
                                     AAD_CLIENT_ID="stock-hub", AAD_CLIENT_SECRET="stock-secret")
    stock = {name: value for name, value in traits.items() if AzureAdOAuthenticator.class_traits().get(name)}
    assert set(traits) - set(stock) == {"group_display_names", "admin_contact"}
    hub.login = 'c.JupyterHub.authenticator_class = "azuread"\n' + config_lines("AzureAdOAuthenticator", stock)
    tls_aad.aad.register_app("stock-hub", "stock-secret", [f"{hub.url}/hub/oauth_callback"])
    hub.start()
    try:
        before = len(tls_aad.requests)
        session = browser(tls_aad.ca_file)
        done = hub_login(session, hub.url, "alice")
        assert done.status_code == 302, hub.log_tail()
        assert urlsplit(done.headers["Location"]).path == "/hub/home"
        assert [(m, p) for m, p, by_browser in tls_aad.requests[before:] if not by_browser] == [
            ("POST", f"/{TENANT_ID}/oauth2/token")]
        user = session.get(f"{hub.url}/hub/api/user", timeout=30).json()
        assert (user["name"], user["admin"], user["groups"]) == ("alice@aml-local.example", False,
                                                                 [GROUPS["Data Science"]])
        state = hub.api("GET", "/users/alice@aml-local.example").json()["auth_state"]
        assert state["user"]["oid"] == USERS["alice"].oid and state["user"]["upn"] == "alice@aml-local.example"
        assert state["scope"] == ["User.Read"] and state["refresh_token"]
        assert tls_aad.aad.verify_token(state["id_token"], "stock-hub")["upn"] == "alice@aml-local.example"
    finally:
        hub.stop()


def test_azure_identity_client_secret_credential(tls_aad):
    from azure.identity import ClientSecretCredential

    cred = ClientSecretCredential(
        TENANT_ID,
        APP.client_id,
        APP.client_secret,
        authority=tls_aad.base_url,
        # MSAL would ask login.microsoftonline.com whether the authority is known
        disable_instance_discovery=True,
        connection_verify=tls_aad.ca_file,
    )
    tok = cred.get_token("https://management.azure.com/.default")
    claims = tls_aad.aad.verify_token(tok.token, "https://management.azure.com/")
    assert claims["appid"] == APP.client_id
    assert tok.expires_on > time.time()
