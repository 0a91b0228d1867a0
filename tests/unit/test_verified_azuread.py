"""The shipped authenticator checks the id_token: signature against the
tenant's published keys, audience, issuer, expiry, tenant. The keys are the
emulated Azure AD's (its AzureAD object, no server: the authenticator's
``httpfetch`` is handed them); tokens are made here with its key (or another).
Fetching them over HTTPS is in tests/integration/test_hub_login.py."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.web import HTTPError

from aml_emulator.aad import AzureAD
from aml_jupyterhub.auth import VerifiedAzureAdOAuthenticator, readable_guest_name
from tests.harness.identity import APP, IDENTITY, TENANT_ID as TID

CLIENT = APP.client_id
GRAPH = "https://login.test"


class Tenant:
    """The keys a tenant publishes (those of ``aad``), and who fetched them."""

    def __init__(self, aad: AzureAD):
        self.aad = aad
        self.fetched: list[str] = []

    async def httpfetch(self, url, label="", **kwargs):
        self.fetched.append(url)
        return self.aad.jwks


@pytest.fixture
def idp(tmp_path):
    aad = AzureAD(IDENTITY, tmp_path / "aad")
    return aad, Tenant(aad)


def claims(**over):
    now = int(time.time())
    base = {"aud": CLIENT, "iss": f"https://sts.windows.net/{TID}/", "iat": now, "nbf": now, "exp": now + 3600,
            "tid": TID, "oid": "10ab2104-3116-4e05-bb5b-244096b7a813", "upn": "alice@aml-local.example",
            "name": "Alice Archer", "ver": "1.0"}
    base.update(over)
    return base


def sign(aad, payload, key=None, kid=None, alg="RS256"):
    key = key or aad._key.private_key
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid or aad.kid})


def authenticator(tenant: Tenant, **kw) -> VerifiedAzureAdOAuthenticator:
    auth = VerifiedAzureAdOAuthenticator(tenant_id=TID, client_id=CLIENT, graph_url=GRAPH, **kw)
    auth.httpfetch = tenant.httpfetch
    return auth


async def login(auth, token):
    """What authenticate() does with the token response."""
    return await auth.token_to_user({"id_token": token})


@pytest.mark.asyncio
async def test_valid_token_accepted(idp):
    aad, tenant = idp
    user = await login(authenticator(tenant), sign(aad, claims()))
    assert user["upn"] == "alice@aml-local.example"


@pytest.mark.parametrize("over,why", [
    ({"aud": "another-app"}, "issued for another application"),
    ({"iss": "https://sts.windows.net/11111111-1111-1111-1111-111111111111/"}, "another tenant or authority"),
    ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, "has expired"),
    ({"tid": "11111111-1111-1111-1111-111111111111"}, "belongs to another tenant"),
])
@pytest.mark.asyncio
async def test_bad_claims_refused(idp, over, why):
    aad, tenant = idp
    with pytest.raises(HTTPError) as err:
        await login(authenticator(tenant), sign(aad, claims(**over)))
    assert err.value.status_code == 403 and why in err.value.log_message


@pytest.mark.asyncio
async def test_forged_signature_refused(idp):
    aad, tenant = idp
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(HTTPError, match="invalid signature"):
        await login(authenticator(tenant), sign(aad, claims(), key=other))
    with pytest.raises(HTTPError, match="key the tenant does not publish"):
        await login(authenticator(tenant), sign(aad, claims(), key=other, kid="unknown-kid"))


@pytest.mark.asyncio
async def test_unsigned_token_refused(idp):
    aad, tenant = idp
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(HTTPError, match="not signed with RS256"):
        await login(authenticator(tenant), unsigned)


@pytest.mark.parametrize("name,readable", [
    ("erin_contoso.example#EXT#@aml-local.example", "erin@contoso.example"),
    ("first_last_contoso.com#ext#@t.onmicrosoft.com", "first_last@contoso.com"),
    ("alice@aml-local.example", "alice@aml-local.example"),
])
def test_guest_names_made_readable(name, readable):
    assert readable_guest_name(name) == readable


def test_username_claim_defaults_to_upn():
    assert VerifiedAzureAdOAuthenticator().username_claim == "upn"


@pytest.mark.asyncio
async def test_keys_fetched_once_from_the_tenants_keys_url(idp):
    aad, tenant = idp
    auth = authenticator(tenant)
    for _ in range(3):
        await login(auth, sign(aad, claims()))
    assert tenant.fetched == [f"{GRAPH}/{TID}/discovery/keys"]


@pytest.mark.asyncio
async def test_stale_keys_are_fetched_again(idp):
    aad, tenant = idp
    auth = authenticator(tenant, keys_cache_seconds=0)
    await login(auth, sign(aad, claims()))
    await login(auth, sign(aad, claims()))
    assert len(tenant.fetched) == 2


@pytest.mark.asyncio
async def test_a_rolled_key_is_fetched_before_refusing(idp, tmp_path):
    aad, tenant = idp
    auth = authenticator(tenant)
    await login(auth, sign(aad, claims()))
    rolled = AzureAD(IDENTITY, tmp_path / "rolled")  # Azure rolled its signing key
    assert rolled.kid != aad.kid
    tenant.aad = rolled
    user = await login(auth, sign(rolled, claims()))
    assert user["upn"] == "alice@aml-local.example" and len(tenant.fetched) == 2


@pytest.mark.asyncio
async def test_a_token_response_without_id_token_is_an_error(idp):
    _, tenant = idp
    with pytest.raises(HTTPError) as err:
        await authenticator(tenant).token_to_user({"access_token": "x"})
    assert err.value.status_code == 500 and "no id_token" in err.value.log_message


def test_guest_user_names_are_the_readable_address(idp):
    _, tenant = idp
    auth = authenticator(tenant)
    assert auth.user_info_to_username({"upn": "erin_contoso.example#EXT#@aml-local.example"}) == "erin@contoso.example"
