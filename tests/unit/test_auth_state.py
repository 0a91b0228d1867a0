"""What the shipped authenticator keeps of a login (auth_state): the claims
the hub reads, no token (issue 24, item 14); a refresh works from those
claims and slims a login an earlier version stored with its tokens; the
REST API route that would show auth_state to admins is the product's unless
HUB_ADMIN_READS_AUTH_STATE. The login itself over HTTPS, the database and the
API are in tests/integration/test_auth_state_privacy.py."""

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from aml_jupyterhub.auth import UserAPIHandler, VerifiedAzureAdOAuthenticator
from aml_jupyterhub.hubconfig import configure, load_settings
from tests.harness.repo import ROOT, example_env

CLAIMS = {"aud": "app", "iss": "https://sts.windows.net/t/", "exp": 2, "iat": 1, "nbf": 1, "ver": "1.0",
          "tid": "t", "oid": "o-alice", "upn": "alice@example.org", "name": "Alice Archer",
          "unique_name": "alice@example.org", "email": "alice@mail.example.org", "groups": ["g-users", "g-admins"],
          "ipaddr": "10.0.0.1", "amr": ["pwd"]}
TOKENS = {"access_token": "eyJ-access", "refresh_token": "refresh-secret", "id_token": "eyJ-id",
          "token_type": "Bearer", "scope": "User.Read", "expires_in": "3599"}
SLIM = {"user": {"oid": "o-alice", "tid": "t", "upn": "alice@example.org", "name": "Alice Archer",
                 "groups": ["g-users", "g-admins"]},
        "scope": ["User.Read"]}


def authenticator(**kw) -> VerifiedAzureAdOAuthenticator:
    return VerifiedAzureAdOAuthenticator(tenant_id="t", client_id="app", enable_auth_state=True,
                                         manage_groups=True, allowed_groups={"g-users"}, **kw)


def stored(auth_state):
    async def get_auth_state():
        return auth_state

    return SimpleNamespace(name="alice@example.org", get_auth_state=get_auth_state)


def test_a_login_keeps_the_claims_the_hub_reads_and_no_token():
    state = authenticator().build_auth_state_dict(TOKENS, CLAIMS)
    assert state == SLIM


def test_the_username_claim_and_the_groups_claim_are_kept_whichever_they_are():
    a = authenticator(username_claim="email", auth_state_groups_key="user.amr")
    state = a.build_auth_state_dict(TOKENS, CLAIMS)
    assert state["user"]["email"] == "alice@mail.example.org" and state["user"]["amr"] == ["pwd"]
    assert "unique_name" not in state["user"] and "access_token" not in state


@pytest.mark.asyncio
async def test_a_refresh_slims_a_login_stored_with_its_tokens_and_keeps_groups_and_admin():
    fat = {**TOKENS, "scope": ["User.Read"], "token_response": TOKENS, "user": CLAIMS}  # oauthenticator's auth_state
    model = await authenticator(admin_groups={"g-admins"}).refresh_user(stored(fat))
    assert model == {"name": "alice@example.org", "admin": True, "groups": ["g-admins", "g-users"],
                     "auth_state": SLIM}


@pytest.mark.asyncio
async def test_a_refresh_follows_the_current_admin_settings():
    model = await authenticator(admin_groups={"g-hub-admins"}).refresh_user(stored(SLIM))
    assert model["admin"] is False and model["auth_state"] == SLIM
    model = await authenticator(admin_users={"alice@example.org"}).refresh_user(stored(SLIM))
    assert model["admin"] is True


@pytest.mark.asyncio
async def test_a_user_who_never_logged_in_must_log_in():
    assert await authenticator().refresh_user(stored(None)) is False


def routes(a) -> dict:
    return {pattern: handler for pattern, handler, *_ in a.get_handlers(app=None)}


def product_authenticator(tmp_path, **settings) -> VerifiedAzureAdOAuthenticator:
    """The authenticator as the product's configure() sets it up from .env.example and ``settings``."""
    c = Config()
    configure(c, load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path),
                                "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"), **settings}), environ={})
    return VerifiedAzureAdOAuthenticator(config=c)


def test_the_users_api_is_the_products_unless_admins_may_read_auth_state(tmp_path):
    assert routes(product_authenticator(tmp_path / "default"))[r"/api/users/([^/]+)"] is UserAPIHandler
    asked = product_authenticator(tmp_path / "asked", HUB_ADMIN_READS_AUTH_STATE="true")
    assert r"/api/users/([^/]+)" not in routes(asked)
    assert routes(asked)["/oauth_callback"]  # the login's own routes either way
