"""The emulated Azure AD and the application-endpoint proxy, driven over real
HTTP: the protocol as Azure AD speaks it (codes, errors, cookies, claims).

The emulator's routes run in an aiohttp server on 127.0.0.1 (in a background
thread); the tests talk to it with ``requests`` as a browser and a hub would.
The proxy's upstream is a tiny aiohttp app standing in for an instance's
JupyterLab. What needs no server (the identity file, keys, verify_token) is
in tests/unit/test_emulator_identity.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest
import requests
from aiohttp import web

from aml_emulator.aad import SESSION_COOKIE, AzureAD
from aml_emulator.appproxy import ApplicationProxy, Upstream
from tests.harness.identity import APP, GROUPS as GROUP, IDENTITY as CONFIG, TENANT_ID as TID, USERS, Clock
from tests.harness.login import form_of, submit_login
from tests.harness.net import ServerThread, free_port

CLIENT_ID, SECRET = APP.client_id, APP.client_secret
REDIRECT = "http://127.0.0.1:8000/hub/oauth_callback"
LAB_TOKEN = "lab-token-only-the-proxy-holds"


# --- the stand-in for an instance's JupyterLab ------------------------------


def _token_refusal(request: web.Request) -> web.Response | None:
    """As the runtimes' JupyterLab: nothing without the token."""
    if request.headers.get("Authorization") != f"token {LAB_TOKEN}":
        return web.Response(status=403, text="token required")
    return None


async def upstream_http(request: web.Request) -> web.Response:
    if (refusal := _token_refusal(request)) is not None:
        return refusal
    if request.path.endswith("/redirect-me"):
        return web.Response(status=302, headers={"Location": f"http://{request.host}/instances/box1/lab/tree"})
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "raw_path": request.raw_path,
            "host": request.headers.get("Host"),
            "cookie": request.headers.get("Cookie"),
            "origin": request.headers.get("Origin"),
            "body": body.decode("utf-8", "replace"),
        },
        headers={"Set-Cookie": "_xsrf=abc; Path=/instances/box1/"},
    )


async def upstream_ws(request: web.Request) -> web.StreamResponse:
    if (refusal := _token_refusal(request)) is not None:
        return refusal
    ws = web.WebSocketResponse(protocols=("v1.kernel.websocket.jupyter.org",))
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            if msg.data == "close please":
                await ws.close(code=4001, message=b"bye")
                break
            await ws.send_str("echo:" + msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


# --- fixtures --------------------------------------------------------------


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("aad-keys")  # shared: one RSA key for the whole run


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def idp(key_dir, clock):
    """The emulator's AAD and application proxy in a thread, and an upstream JupyterLab stand-in.

    (Not ``emu``: that is the session's emulator process, reset per test.)"""
    threads = ServerThread()
    aad = AzureAD(CONFIG, key_dir, clock=clock)

    upstream_app = web.Application()
    upstream_app.router.add_get("/instances/box1/api/kernels/k1/channels", upstream_ws)
    upstream_app.router.add_route("*", "/instances/box1/{tail:.*}", upstream_http)
    upstream = threads.serve(upstream_app)

    dead = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    instances = {
        "box1": Upstream(upstream, USERS["alice"].oid, LAB_TOKEN),
        "orphan": Upstream(upstream, None, LAB_TOKEN),
        "dead": Upstream(dead, USERS["alice"].oid, LAB_TOKEN),
    }

    async def resolve(name):
        if name == "stopped":
            raise web.HTTPConflict(text="Compute instance stopped is Stopped; start it first.")
        if name not in instances:
            raise web.HTTPNotFound(text=f"No compute instance {name}.")
        return instances[name]

    app = web.Application()
    aad.add_routes(app)
    ApplicationProxy(aad, resolve).add_routes(app)
    base = threads.serve(app)

    class Server:
        pass

    e = Server()
    e.aad, e.base, e.upstream, e.clock, e.threads = aad, base, upstream, clock, threads
    yield e
    threads.close()


# --- helpers ----------------------------------------------------------------



def pkce():
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(s: requests.Session, base: str, tenant: str = TID, **params):
    q = {"response_type": "code", "redirect_uri": REDIRECT, "client_id": CLIENT_ID, "state": "st-123"}
    q.update(params)
    q = {k: v for k, v in q.items() if v is not None}
    return s.get(f"{base}/{tenant}/oauth2/authorize", params=q, allow_redirects=False)


def submit(s: requests.Session, page: requests.Response, username: str, password: str):
    """Post the login form ``page`` shows; the answer itself, not followed."""
    return submit_login(s, page, username, password, allow_redirects=False)


def callback_params(resp: requests.Response) -> dict:
    assert resp.status_code == 302, resp.text
    loc = resp.headers["Location"]
    assert loc.startswith(REDIRECT + "?"), loc
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def login_code(s, base, username="alice", **params):
    """Authorize, log in with the form, return (callback params, code_verifier)."""
    verifier, challenge = pkce()
    page = authorize(s, base, code_challenge=challenge, code_challenge_method="S256", **params)
    assert page.status_code == 200, page.text
    resp = submit(s, page, username, f"{username}-password")
    return callback_params(resp), verifier


def token(base, data, auth=None, tenant=TID, path="oauth2/token"):
    return requests.post(f"{base}/{tenant}/{path}", data=data, auth=auth)


def redeem(base, code, verifier, **extra):
    data = {
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "data": "None",  # oauthenticator sends this literally
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    data.update(extra)
    return token(base, {k: v for k, v in data.items() if v is not None})


def verify_with_jwks(base, token_str, audience):
    jwks = requests.get(f"{base}/common/discovery/keys").json()
    kid = jwt.get_unverified_header(token_str)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    # the emulator's clock is injected, so check exp against it rather than the wall clock
    claims = jwt.decode(
        token_str, key, algorithms=["RS256"], audience=audience, issuer=f"https://sts.windows.net/{TID}/",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


def assert_aad_error(resp, status, error, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in body["error_description"]
    assert "\r\nCorrelation ID: " in body["error_description"]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert body[key]
    return body


# --- keys -------------------------------------------------------------------


def test_jwks_kid_is_the_certificate_thumbprint(idp):
    for path in (f"/{TID}/discovery/keys", "/common/discovery/keys", "/discovery/keys"):
        keys = requests.get(idp.base + path).json()["keys"]
        assert len(keys) == 1
        k = keys[0]
        assert k["kty"] == "RSA" and k["use"] == "sig" and k["e"] == "AQAB"
        der = base64.b64decode(k["x5c"][0])
        thumb = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        assert k["kid"] == k["x5t"] == thumb


def test_openid_configuration_has_absolute_urls(idp):
    doc = requests.get(f"{idp.base}/{TID}/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"https://sts.windows.net/{TID}/"
    assert doc["authorization_endpoint"] == f"{idp.base}/{TID}/oauth2/authorize"
    assert doc["token_endpoint"] == f"{idp.base}/{TID}/oauth2/token"
    assert requests.get(doc["jwks_uri"]).json()["keys"]
    unknown = requests.get(f"{idp.base}/not-a-tenant/.well-known/openid-configuration")
    assert_aad_error(unknown, 400, "invalid_tenant", 90002)


# --- the code flow ------------------------------------------------------------


def test_full_code_flow_with_pkce_and_verified_id_token(idp):
    s = requests.Session()
    page = authorize(s, idp.base, code_challenge=pkce()[1], code_challenge_method="S256")
    assert page.status_code == 200
    assert "Local Azure AD emulator" in page.text
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    form = form_of(page.text)
    assert form.fields["state"] == "st-123" and form.fields["redirect_uri"] == REDIRECT

    params, verifier = login_code(s, idp.base, "alice")
    assert params["state"] == "st-123"
    assert params["session_state"]
    resp = redeem(idp.base, params["code"], verifier)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "User.Read"
    assert body["expires_in"] == "3600" and body["expires_on"] == str(int(idp.clock.now) + 3600)
    assert body["resource"] == "00000002-0000-0000-c000-000000000000"
    assert body["refresh_token"]

    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"] == header["x5t"]
    claims = verify_with_jwks(idp.base, body["id_token"], CLIENT_ID)
    alice = USERS["alice"]
    assert claims["aud"] == CLIENT_ID
    assert claims["exp"] == claims["iat"] + 3600 == int(idp.clock.now) + 3600
    assert claims["ver"] == "1.0" and claims["amr"] == ["pwd"] and claims["tid"] == TID
    assert claims["oid"] == alice.oid
    assert claims["upn"] == claims["unique_name"] == claims["preferred_username"] == alice.upn
    assert claims["name"] == alice.name
    assert claims["given_name"] == alice.given_name and claims["family_name"] == alice.family_name
    assert claims["groups"] == [GROUP["Data Science"]]
    assert claims["sub"] and claims["sub"] != alice.oid

    access = verify_with_jwks(idp.base, body["access_token"], "00000002-0000-0000-c000-000000000000")
    assert access["oid"] == alice.oid and access["appid"] == CLIENT_ID
    # an expired id_token fails real verification (the hub itself never checks)
    with pytest.raises(jwt.ExpiredSignatureError):
        key = jwt.PyJWKSet.from_dict(requests.get(idp.base + "/discovery/keys").json()).keys[0].key
        jwt.decode(body["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID)


def test_sub_is_pairwise_and_stable(idp):
    subs = []
    for _ in range(2):
        params, verifier = login_code(requests.Session(), idp.base, "bob")
        subs.append(jwt.decode(redeem(idp.base, params["code"], verifier).json()["id_token"],
                               options={"verify_signature": False})["sub"])
    assert subs[0] == subs[1]
    other_app = idp.aad.issue_access_token("x", user=USERS["bob"], client_id="other-app")
    assert jwt.decode(other_app, options={"verify_signature": False})["sub"] != subs[0]


def test_code_replay_is_refused(idp):
    params, verifier = login_code(requests.Session(), idp.base)
    assert redeem(idp.base, params["code"], verifier).status_code == 200
    assert_aad_error(redeem(idp.base, params["code"], verifier), 400, "invalid_grant", 54005)


def test_expired_code_is_refused(idp):
    params, verifier = login_code(requests.Session(), idp.base)
    idp.clock.now += 601
    assert_aad_error(redeem(idp.base, params["code"], verifier), 400, "invalid_grant", 70008)


def test_code_just_within_its_lifetime_works(idp):
    params, verifier = login_code(requests.Session(), idp.base)
    idp.clock.now += 599
    assert redeem(idp.base, params["code"], verifier).status_code == 200


def test_pkce_mismatch_and_missing_verifier(idp):
    params, _ = login_code(requests.Session(), idp.base)
    assert_aad_error(redeem(idp.base, params["code"], pkce()[0]), 400, "invalid_grant", 501481)
    params, _ = login_code(requests.Session(), idp.base)
    assert_aad_error(redeem(idp.base, params["code"], None), 400, "invalid_grant", 501481)


def test_pkce_plain_and_no_pkce(idp):
    s = requests.Session()
    page = authorize(s, idp.base, code_challenge="plain-verifier-" + "x" * 40)  # method defaults to plain
    params = callback_params(submit(s, page, "alice", "alice-password"))
    assert redeem(idp.base, params["code"], "plain-verifier-" + "x" * 40).status_code == 200
    # SSO now: a second authorize without PKCE gives a code right away
    params = callback_params(authorize(s, idp.base))
    assert redeem(idp.base, params["code"], None).status_code == 200


def test_token_redirect_uri_must_match_the_code(idp):
    params, verifier = login_code(requests.Session(), idp.base)
    resp = redeem(idp.base, params["code"], verifier, redirect_uri="http://localhost:8000/hub/oauth_callback")
    assert_aad_error(resp, 400, "invalid_grant", 500112)


def test_wrong_and_missing_secret_are_401(idp):
    params, verifier = login_code(requests.Session(), idp.base)
    assert_aad_error(redeem(idp.base, params["code"], verifier, client_secret="nope"), 401, "invalid_client", 7000215)
    assert_aad_error(redeem(idp.base, params["code"], verifier, client_secret=None), 401, "invalid_client", 7000218)


def test_unknown_client_and_bad_grant_type_at_token_endpoint(idp):
    assert_aad_error(token(idp.base, {"grant_type": "authorization_code", "code": "x", "client_id": "nobody",
                                      "client_secret": "s"}), 400, "unauthorized_client", 700016)
    assert_aad_error(token(idp.base, {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": SECRET}),
                     400, "unsupported_grant_type", 70003)
    assert_aad_error(token(idp.base, {"client_id": CLIENT_ID, "client_secret": SECRET}), 400, "invalid_request", 900144)
    assert_aad_error(token(idp.base, {"grant_type": "authorization_code", "code": "garbage", "redirect_uri": REDIRECT,
                                      "client_id": CLIENT_ID, "client_secret": SECRET}), 400, "invalid_grant", 9002313)


def test_basic_client_authentication(idp):
    params, verifier = login_code(requests.Session(), idp.base)
    data = {"code": params["code"], "grant_type": "authorization_code", "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    assert_aad_error(token(idp.base, data, auth=(CLIENT_ID, "wrong")), 401, "invalid_client", 7000215)
    params, verifier = login_code(requests.Session(), idp.base)
    data.update(code=params["code"], code_verifier=verifier)
    resp = token(idp.base, data, auth=(CLIENT_ID, SECRET))
    assert resp.status_code == 200, resp.text
    assert jwt.decode(resp.json()["id_token"], options={"verify_signature": False})["aud"] == CLIENT_ID


def test_code_bound_to_its_client(idp):
    idp.aad.register_app("second-app", "second-secret", [REDIRECT])
    params, verifier = login_code(requests.Session(), idp.base)
    resp = redeem(idp.base, params["code"], verifier, client_id="second-app", client_secret="second-secret")
    assert_aad_error(resp, 400, "invalid_grant", 70000)
    assert redeem(idp.base, params["code"], verifier).status_code == 200  # still good for its own client


# --- authorize errors ------------------------------------------------------------


def test_authorize_unknown_client_and_redirect_mismatch_show_error_pages(idp):
    resp = authorize(requests.Session(), idp.base, client_id="00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 400 and "AADSTS700016" in resp.text
    resp = authorize(requests.Session(), idp.base, redirect_uri="https://evil.example/hub/oauth_callback")
    assert resp.status_code == 400 and "AADSTS50011" in resp.text
    # exact match: a trailing slash is a different URI
    resp = authorize(requests.Session(), idp.base, redirect_uri=REDIRECT + "/")
    assert resp.status_code == 400 and "AADSTS50011" in resp.text
    resp = authorize(requests.Session(), idp.base, tenant="11111111-1111-1111-1111-111111111111")
    assert resp.status_code == 400 and "AADSTS90002" in resp.text


def test_authorize_without_code_response_type_redirects_with_error(idp):
    resp = authorize(requests.Session(), idp.base, response_type="token")
    params = callback_params(resp)
    assert params["error"] == "unsupported_response_type"
    assert params["state"] == "st-123"


def test_common_and_domain_tenants(idp):
    for tenant in ("common", CONFIG.domain):
        s = requests.Session()
        page = authorize(s, idp.base, tenant=tenant)
        assert page.status_code == 200
        params = callback_params(submit(s, page, "bob", "bob-password"))
        resp = token(idp.base, {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT,
                                "client_id": CLIENT_ID, "client_secret": SECRET}, tenant=tenant)
        assert resp.status_code == 200, resp.text


# --- the login page --------------------------------------------------------------


def test_bad_password_reshows_the_form_keeping_username_and_params(idp):
    s = requests.Session()
    verifier, challenge = pkce()
    page = authorize(s, idp.base, code_challenge=challenge, code_challenge_method="S256")
    resp = submit(s, page, "alice", "wrong")
    assert resp.status_code == 200
    assert "incorrect" in resp.text and 'role="alert"' in resp.text
    assert SESSION_COOKIE not in resp.cookies
    again = form_of(resp.text)
    assert again.fields["username"] == "alice"
    assert again.fields["password"] == ""
    assert again.fields["state"] == "st-123" and again.fields["code_challenge"] == challenge
    # nothing lost: the re-shown form still completes the flow
    params = callback_params(submit(s, resp, "alice", "alice-password"))
    assert redeem(idp.base, params["code"], verifier).status_code == 200


def test_unknown_user_is_refused_and_upn_login_works(idp):
    s = requests.Session()
    page = authorize(s, idp.base)
    assert submit(s, page, "mallory", "x").status_code == 200
    resp = submit(s, page, "ALICE@aml-local.example", "alice-password")
    assert callback_params(resp)["code"]


def test_login_hint_prefills_username(idp):
    page = authorize(requests.Session(), idp.base, login_hint="carol@aml-local.example")
    assert form_of(page.text).fields["username"] == "carol@aml-local.example"


def test_tampered_hidden_redirect_uri_is_rechecked(idp):
    s = requests.Session()
    page = authorize(s, idp.base)
    form = form_of(page.text)
    data = dict(form.fields, username="alice", password="alice-password", redirect_uri="https://evil.example/cb")
    resp = s.post(idp.base + form.action, data=data, allow_redirects=False)
    assert resp.status_code == 400 and "AADSTS50011" in resp.text


def test_session_cookie_attributes_and_sso(idp):
    s = requests.Session()
    page = authorize(s, idp.base)
    resp = submit(s, page, "alice", "alice-password")
    set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith(SESSION_COOKIE + "=")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here; set over HTTPS
    first = callback_params(resp)
    # second authorize: SSO, no form
    second = callback_params(authorize(s, idp.base, state="again"))
    assert second["state"] == "again" and second["code"] != first["code"]
    assert second["session_state"] == first["session_state"]
    # prompt=login forces the form even with a session
    assert authorize(s, idp.base, prompt="login").status_code == 200
    # a tampered cookie is no session
    value = s.cookies.get(SESSION_COOKIE)
    s.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert authorize(s, idp.base).status_code == 200


def test_session_expires(idp):
    s = requests.Session()
    login_code(s, idp.base)
    idp.clock.now += 13 * 3600
    assert authorize(s, idp.base).status_code == 200


def test_prompt_none_without_session(idp):
    params = callback_params(authorize(requests.Session(), idp.base, prompt="none"))
    assert params["error"] == "login_required" and params["state"] == "st-123"


# --- claims -----------------------------------------------------------------------


def id_token_claims(idp, username):
    params, verifier = login_code(requests.Session(), idp.base, username)
    resp = redeem(idp.base, params["code"], verifier)
    assert resp.status_code == 200
    return verify_with_jwks(idp.base, resp.json()["id_token"], CLIENT_ID)


def test_groups_claim_present_and_absent(idp):
    assert id_token_claims(idp, "carol")["groups"] == [GROUP["Hub Admins"]]
    assert "groups" not in id_token_claims(idp, "dave")


def test_guest_upn(idp):
    claims = id_token_claims(idp, "erin")
    assert claims["upn"] == "erin_contoso.example#EXT#@aml-local.example"
    assert claims["email"] == "erin@contoso.example"


def test_alg_none_id_token_mode(key_dir, clock):
    aad = AzureAD(CONFIG, key_dir, clock=clock, id_token_alg="none")
    app = web.Application()
    aad.add_routes(app)
    with ServerThread() as threads:
        base = threads.serve(app)
        params, verifier = login_code(requests.Session(), base)
        id_token = redeem(base, params["code"], verifier).json()["id_token"]
    assert id_token.endswith(".")
    assert jwt.get_unverified_header(id_token)["alg"] == "none"
    assert jwt.decode(id_token, options={"verify_signature": False})["upn"] == USERS["alice"].upn


# --- other grants ----------------------------------------------------------------


def test_refresh_token_grant(idp):
    params, verifier = login_code(requests.Session(), idp.base, "bob")
    first = redeem(idp.base, params["code"], verifier).json()
    resp = token(idp.base, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                            "client_id": CLIENT_ID, "client_secret": SECRET})
    assert resp.status_code == 200, resp.text
    assert verify_with_jwks(idp.base, resp.json()["id_token"], CLIENT_ID)["oid"] == USERS["bob"].oid
    bad = token(idp.base, {"grant_type": "refresh_token", "refresh_token": "nope",
                           "client_id": CLIENT_ID, "client_secret": SECRET})
    assert_aad_error(bad, 400, "invalid_grant", 9002313)


def test_client_credentials_v1_and_v2_and_verify_token(idp):
    resp = token(idp.base, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
                            "resource": "https://management.azure.com/"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "id_token" not in body and body["resource"] == "https://management.azure.com/"
    claims = idp.aad.verify_token(body["access_token"], "https://management.azure.com/")
    assert claims["appid"] == CLIENT_ID and claims["idtyp"] == "app"

    resp = token(idp.base, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
                            "scope": "https://management.azure.com/.default"}, path="oauth2/v2.0/token")
    assert resp.status_code == 200, resp.text
    v2 = resp.json()["access_token"]
    assert jwt.decode(v2, options={"verify_signature": False})["aud"] == "https://management.azure.com"
    # either spelling of the ARM audience verifies
    assert idp.aad.verify_token(v2, "https://management.azure.com/")["appid"] == CLIENT_ID
    with pytest.raises(jwt.InvalidAudienceError):
        idp.aad.verify_token(v2, "https://storage.azure.com/")
    bad_scope = token(idp.base, {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
                                 "scope": "User.Read"}, path="oauth2/v2.0/token")
    assert_aad_error(bad_scope, 400, "invalid_scope", 1002012)


# --- logout and control API ---------------------------------------------------------


def test_logout_clears_session_and_redirects_only_to_registered_origins(idp):
    s = requests.Session()
    login_code(s, idp.base)
    assert authorize(s, idp.base).status_code == 302  # SSO
    resp = s.get(f"{idp.base}/{TID}/oauth2/logout",
                 params={"post_logout_redirect_uri": "http://127.0.0.1:8000/hub/login"}, allow_redirects=False)
    assert resp.status_code == 302 and resp.headers["Location"] == "http://127.0.0.1:8000/hub/login"
    assert authorize(s, idp.base).status_code == 200  # the form again
    resp = s.get(f"{idp.base}/{TID}/oauth2/logout",
                 params={"post_logout_redirect_uri": "https://evil.example/"}, allow_redirects=False)
    assert resp.status_code == 200 and "signed out" in resp.text


def test_control_api_registers_apps_and_lists_users(idp):
    users = requests.get(idp.base + "/_emulator/aad/users").json()["users"]
    assert {u["username"] for u in users} == set(USERS)
    assert all("password" not in u for u in users)
    groups = requests.get(idp.base + "/_emulator/aad/groups").json()["groups"]
    assert {g["display_name"] for g in groups} == {"Data Science", "Hub Admins"}

    new_redirect = "https://hub.test.example/hub/oauth_callback"
    resp = requests.post(idp.base + "/_emulator/aad/apps",
                         json={"client_id": "new-app", "client_secret": "new-secret", "redirect_uris": [new_redirect]})
    assert resp.status_code == 201, resp.text
    bad = requests.post(idp.base + "/_emulator/aad/apps", json={"client_id": "x", "client_secret": "y",
                                                                "redirect_uris": ["not a url"]})
    assert bad.status_code == 400
    s = requests.Session()
    page = authorize(s, idp.base, client_id="new-app", redirect_uri=new_redirect)
    resp = submit(s, page, "dave", "dave-password")
    assert resp.headers["Location"].startswith(new_redirect + "?code=")


# --- application proxy -----------------------------------------------------------


def browser_login(idp, username) -> requests.Session:
    s = requests.Session()
    login_code(s, idp.base, username)
    return s


def test_proxy_without_session_redirects_to_login_and_back(idp):
    s = requests.Session()
    resp = s.get(idp.base + "/instances/box1/lab?reset", allow_redirects=False)
    assert resp.status_code == 302
    login_page = s.get(idp.base + resp.headers["Location"], allow_redirects=False)
    assert login_page.status_code == 200 and "Sign in" in login_page.text
    assert form_of(login_page.text).fields["return_to"] == "/instances/box1/lab?reset"
    back = submit(s, login_page, "alice", "alice-password")
    assert back.status_code == 302 and back.headers["Location"] == "/instances/box1/lab?reset"
    proxied = s.get(idp.base + back.headers["Location"], allow_redirects=False)
    assert proxied.status_code == 200
    assert proxied.json()["raw_path"] == "/instances/box1/lab?reset"


def test_login_return_to_must_stay_on_the_emulator(idp):
    resp = requests.get(f"{idp.base}/{TID}/login", params={"return_to": "https://evil.example/x"})
    assert resp.status_code == 400
    resp = requests.get(f"{idp.base}/{TID}/login", params={"return_to": "//evil.example/x"})
    assert resp.status_code == 400


def test_proxy_refuses_another_user(idp):
    s = browser_login(idp, "bob")
    resp = s.get(idp.base + "/instances/box1/lab", allow_redirects=False)
    assert resp.status_code == 403
    assert ("User bob@aml-local.example does not have access to compute instance box1. "
            "Only the creator can access a compute instance.") in resp.text


def test_proxy_refuses_everybody_on_unassigned_instance(idp):
    s = browser_login(idp, "alice")
    resp = s.get(idp.base + "/instances/orphan/lab", allow_redirects=False)
    assert resp.status_code == 403 and "not assigned" in resp.text


def test_proxy_passes_resolver_errors(idp):
    s = browser_login(idp, "alice")
    assert s.get(idp.base + "/instances/nope/lab").status_code == 404
    resp = s.get(idp.base + "/instances/stopped/lab")
    assert resp.status_code == 409 and "Stopped" in resp.text
    resp = s.get(idp.base + "/instances/dead/lab")
    assert resp.status_code == 502 and "did not answer" in resp.text


def test_proxy_forwards_http_for_the_assigned_user(idp):
    s = browser_login(idp, "alice")
    s.cookies.set("other", "kept")
    for bare in ("/instances/box1/", "/instances/box1"):
        resp = s.get(idp.base + bare, allow_redirects=False)
        assert resp.status_code == 302 and resp.headers["Location"] == "/instances/box1/lab"

    # the browser's own Authorization never reaches the Lab: the proxy's token replaces it
    resp = s.get(idp.base + "/instances/box1/api/contents/a%2Fb.ipynb?content=1&type=file",
                 headers={"Origin": idp.base, "Authorization": "token guessed"}, allow_redirects=False)
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["method"] == "GET"
    assert seen["raw_path"] == "/instances/box1/api/contents/a%2Fb.ipynb?content=1&type=file"
    assert seen["host"] == idp.upstream.split("//")[1]
    assert seen["origin"] == idp.upstream  # same-origin request stays same-origin upstream
    assert "other=kept" in seen["cookie"] and SESSION_COOKIE not in seen["cookie"]
    assert "_xsrf=abc" in resp.headers["Set-Cookie"]

    big = "x" * 300_000
    resp = s.post(idp.base + "/instances/box1/api/sessions", data=big, allow_redirects=False)
    assert resp.json()["method"] == "POST" and resp.json()["body"] == big

    resp = s.put(idp.base + "/instances/box1/api/x", headers={"Origin": "https://evil.example"}, data=b"{}")
    assert resp.json()["origin"] == "https://evil.example"  # cross-origin left for Jupyter to refuse

    resp = s.get(idp.base + "/instances/box1/redirect-me", allow_redirects=False)
    assert resp.headers["Location"] == idp.base + "/instances/box1/lab/tree"


def test_proxy_websocket_round_trip(idp):
    s = browser_login(idp, "alice")
    cookie = s.cookies.get(SESSION_COOKIE)
    ws_url = idp.base.replace("http://", "ws://") + "/instances/box1/api/kernels/k1/channels?session_id=s1"

    async def talk():
        async with aiohttp.ClientSession(cookies={SESSION_COOKIE: cookie}) as client:
            async with client.ws_connect(ws_url, protocols=("v1.kernel.websocket.jupyter.org",),
                                         headers={"Origin": idp.base}) as ws:
                assert ws.protocol == "v1.kernel.websocket.jupyter.org"
                await ws.send_str("hello")
                text = await ws.receive(timeout=5)
                await ws.send_bytes(b"\x01\x02\x03")
                binary = await ws.receive(timeout=5)
                await ws.send_str("close please")
                closing = await ws.receive(timeout=5)
                return text.data, binary.data, closing.type, ws.close_code

        return None

    text, binary, closing_type, code = asyncio.run(talk())
    assert text == "echo:hello"
    assert binary == b"\x03\x02\x01"
    assert closing_type == aiohttp.WSMsgType.CLOSE
    assert code == 4001  # the upstream's close code reaches the browser

    async def refused():
        async with aiohttp.ClientSession(cookies={SESSION_COOKIE: browser_login(idp, "bob").cookies.get(SESSION_COOKIE)}) as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await client.ws_connect(ws_url)
            return err.value.status

    assert asyncio.run(refused()) == 403
