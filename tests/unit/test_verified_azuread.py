"""The shipped authenticator checks the id_token: signature against the
tenant's published keys, audience, issuer, expiry, tenant. The keys are served
by the emulated Azure AD; tokens are made here with its key (or another)."""

import time

import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.web import HTTPError

from aml_jupyterhub.auth import VerifiedAzureAdOAuthenticator, readable_guest_name
from aml_emulator.aad import AzureAD, IdentityConfig

IDENTITY = IdentityConfig.load(None)
TID = IDENTITY.tenant_id
CLIENT = IDENTITY.apps[0].client_id


@pytest_asyncio.fixture
async def idp(tmp_path):
    aad = AzureAD(IDENTITY, tmp_path / "aad")
    app = web.Application()
    aad.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield aad, f"http://127.0.0.1:{port}"
    await runner.cleanup()


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


def authenticator(base):
    return VerifiedAzureAdOAuthenticator(tenant_id=TID, client_id=CLIENT, graph_url=base)


async def login(auth, token):
    """What authenticate() does with the token response: checked with expiry."""
    from aml_jupyterhub.auth import _fresh_login

    reset = _fresh_login.set(True)
    try:
        return await auth.token_to_user({"id_token": token})
    finally:
        _fresh_login.reset(reset)


@pytest.mark.asyncio
async def test_valid_token_accepted(idp):
    aad, base = idp
    user = await login(authenticator(base), sign(aad, claims()))
    assert user["upn"] == "alice@aml-local.example"


@pytest.mark.parametrize("over,why", [
    ({"aud": "another-app"}, "issued for another application"),
    ({"iss": "https://sts.windows.net/11111111-1111-1111-1111-111111111111/"}, "another tenant or authority"),
    ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, "has expired"),
    ({"tid": "11111111-1111-1111-1111-111111111111"}, "belongs to another tenant"),
])
@pytest.mark.asyncio
async def test_bad_claims_refused(idp, over, why):
    aad, base = idp
    with pytest.raises(HTTPError) as err:
        await login(authenticator(base), sign(aad, claims(**over)))
    assert err.value.status_code == 403 and why in err.value.log_message


@pytest.mark.asyncio
async def test_forged_signature_refused(idp):
    aad, base = idp
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(HTTPError, match="invalid signature"):
        await login(authenticator(base), sign(aad, claims(), key=other))
    with pytest.raises(HTTPError, match="key the tenant does not publish"):
        await login(authenticator(base), sign(aad, claims(), key=other, kid="unknown-kid"))


@pytest.mark.asyncio
async def test_unsigned_token_refused(idp):
    aad, base = idp
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(HTTPError, match="not signed with RS256"):
        await login(authenticator(base), unsigned)


@pytest.mark.asyncio
async def test_refresh_keeps_an_expired_but_genuine_token(idp):
    aad, base = idp
    old = sign(aad, claims(exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200))
    user = await authenticator(base).token_to_user({"id_token": old})  # no fresh login: refresh
    assert user["oid"]


@pytest.mark.parametrize("name,readable", [
    ("erin_contoso.example#EXT#@aml-local.example", "erin@contoso.example"),
    ("first_last_contoso.com#ext#@t.onmicrosoft.com", "first_last@contoso.com"),
    ("alice@aml-local.example", "alice@aml-local.example"),
])
def test_guest_names_made_readable(name, readable):
    assert readable_guest_name(name) == readable


def test_username_claim_defaults_to_upn():
    assert VerifiedAzureAdOAuthenticator().username_claim == "upn"
