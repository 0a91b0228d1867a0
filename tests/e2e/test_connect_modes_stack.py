"""Every connect mode in the compose stack users start, one stack switched
from mode to mode as an admin does (AML_CONNECT_MODE in .env, then
`docker compose up -d`), beside the session's stack:

- direct: the hub turns on JupyterHub's internal TLS, the proxy's container
  takes the proxy's certificates the hub shares and routes straight to the
  instance container's address on the stack's network (its "VNet"), and the
  server there takes only the hub's and the proxy's certificates;
- redirect: the proxy's container routes users' paths to the hub's redirect
  endpoint (in the hub's container), which sends the owner on to AML's own
  JupyterLab on the instance, in a real browser down to a kernel's answer;
- proxy again, then direct again: every switch leaves the stack healthy and
  serving (spawn, kernel, stop)."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import USERS
from tests.e2e.stack import (
    HOST, ComposeStack, HubApi, console_run, create_token, launch_chromium, password, run_code_sync, sign_in, upn,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

ALICE, BOB, CAROL = upn("alice"), upn("bob"), upn("carol")

# run in the tunnels container: another machine on the network, without a certificate of the hub's
PROBE = r"""
import json, socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
out = {}
try:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection((host, port), timeout=10)) as s:
        s.sendall(b"GET /hub/api HTTP/1.0\r\n\r\n")
        out["tls_without_cert"] = s.recv(100).decode(errors="replace") or "closed"
except (OSError, ssl.SSLError) as e:
    out["tls_without_cert"] = "refused: " + type(e).__name__
try:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        out["plain_http"] = s.recv(100).decode(errors="replace") or "closed"
except OSError as e:
    out["plain_http"] = "refused: " + type(e).__name__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def direct_stack(tmp_path_factory, timer):
    s = ComposeStack(tmp_path_factory.mktemp("e2e-modes"), settings={"AML_CONNECT_MODE": "direct"})
    s.write_files()
    try:
        with timer.phase("connect modes: build (cached) and docker compose up -d --wait"):
            s.build()
            s.up()
        s.fetch_certs()
        s.wait_https()
        yield s
    except Exception:
        print(s.logs(150), flush=True)
        raise
    finally:
        with timer.phase("connect modes: teardown"):
            s.remove_instances(USERS)
            s.down(volumes=True)
            s.remove_instances(USERS)
            s.remove_network()


def test_direct_mode_in_compose_routes_to_the_instance_with_internal_tls(direct_stack, timer):
    s = direct_stack
    session, page = sign_in(s, "carol")
    assert page.status_code == 200, (page.status_code, page.url)
    admin = HubApi(s, create_token(s, session, CAROL))
    with timer.phase("direct mode: spawn, kernel over wss"):
        admin.start_server(CAROL, {"profile": "small"})
        events = admin.progress_messages(CAROL)
        assert events[-1].get("ready"), events
        state = admin.server(CAROL)["state"]
        assert (state["mode"], state["scheme"], state["api_port"]) == ("direct", "https", 0)
        instance = s.emulator_instances()[state["instance_name"]]
        assert state["server_ip"] == instance["connectivity"]["private_ip"]
        assert run_code_sync(admin, CAROL, "6 * 7") == "42"

    # the proxy's container holds the proxy's certificates the hub shared, and no CA key
    listing = s.compose("exec", "-T", "proxy", "sh", "-c", "ls /srv/proxy-secrets/internal-ssl; "
                        "grep -l 'PRIVATE KEY' /srv/proxy-secrets/internal-ssl/*").stdout.split()
    assert "READY" in listing and "proxy-client.key" in listing
    assert [f for f in listing if f.startswith("/")] == ["/srv/proxy-secrets/internal-ssl/proxy-api.key",
                                                         "/srv/proxy-secrets/internal-ssl/proxy-client.key"]

    # another machine on the network reaches the server's port but gets nothing from it
    probe = s.compose("exec", "-T", "tunnels", "python3", "-c", PROBE, state["server_ip"],
                      str(state["remote_port"])).stdout
    seen = json.loads(probe.strip().splitlines()[-1])
    # (TLS 1.3: the server's "certificate required" alert arrives at the first read)
    # (the refusal reaches the client as the alert, or as the connection closed mid-handshake under load)
    assert seen["tls_without_cert"] in ("refused: SSLError", "refused: SSLEOFError"), seen
    assert seen["plain_http"] in ("closed", "refused: ConnectionResetError"), seen

    # the admins' instances page works with internal TLS too (it calls the hub's API with its certificate)
    r = session.get(s.service_url("aml-instances"), timeout=60)
    assert r.status_code == 200 and f'data-instance="{state["instance_name"]}"' in r.text, (r.status_code, r.text[:500])

    with timer.phase("direct mode: stop"):
        admin.stop_server(CAROL)
    wait_until(lambda: s.emulator_instances()[state["instance_name"]]["state"] == "Stopped", 60,
               "carol's instance to be stopped")


def switch_mode(s: ComposeStack, mode: str, timer) -> None:
    """AML_CONNECT_MODE=<mode> in .env, then `docker compose up -d --wait`, as an admin switches."""
    s.settings["AML_CONNECT_MODE"] = mode
    s.write_files()
    with timer.phase(f"connect modes: switch to {mode} (docker compose up -d --wait)"):
        s.up()
    s.wait_https()


def spawn_and_run(s: ComposeStack, admin: HubApi, user: str, mode: str) -> dict:
    admin.start_server(user, {"profile": "small"})
    events = admin.progress_messages(user)
    assert events[-1].get("ready"), events
    state = admin.server(user)["state"]
    assert state["mode"] == mode, state
    return state


def test_redirect_mode_in_compose_sends_the_owner_to_aml_jupyterlab(direct_stack, timer):
    """Redirect mode used to answer 503 under compose: the redirect endpoint listened on 127.0.0.1 inside
    the hub's container, where the proxy's container cannot reach it."""
    from playwright.sync_api import sync_playwright

    s = direct_stack
    switch_mode(s, "redirect", timer)
    session, _ = sign_in(s, "carol")
    admin = HubApi(s, create_token(s, session, CAROL, note="redirect e2e"))
    with sync_playwright() as p:
        browser = launch_chromium(p, s)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(60_000)
            sign_in_in_browser(s, page, "alice")  # redirect mode needs her Azure AD object id: her own login
            with timer.phase("redirect mode: spawn (AML's JupyterLab, nothing installed)"):
                state = spawn_and_run(s, admin, ALICE, "redirect")
            instance = state["instance_name"]
            with timer.phase("redirect mode: the browser through the proxy, the hub's page, to AML's JupyterLab"):
                page.goto(admin.server_url(ALICE))
                page.wait_for_url(re.compile(rf"^{re.escape(s.emulator_url)}/instances/{instance}/lab"),
                                  timeout=120_000)
                page.locator(".jp-Launcher").first.wait_for(state="visible", timeout=120_000)
                page.locator('.jp-LauncherCard[data-category="Console"]').first.click()
                page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=120_000)  # the kernel is up
                console_run(page, "6 * 7", "42", timeout_ms=60_000)
        finally:
            browser.close()
    # bob, signed in, is refused at alice's JupyterLab, as AML's gateway refuses everyone but its user
    bob_session, _ = sign_in(s, "bob")
    r = bob_session.get(f"{s.emulator_url}/instances/{instance}/lab", timeout=60)
    assert r.status_code == 403, (r.status_code, r.url)
    with timer.phase("redirect mode: stop"):
        admin.stop_server(ALICE)
    wait_until(lambda: s.emulator_instances()[instance]["state"] == "Stopped", 120, "alice's instance to stop")


def test_back_to_proxy_mode_then_direct_again_the_stack_serves(direct_stack, timer):
    s = direct_stack
    switch_mode(s, "proxy", timer)
    session, _ = sign_in(s, "carol")
    admin = HubApi(s, create_token(s, session, CAROL, note="proxy e2e"))
    with timer.phase("proxy mode: spawn, kernel, stop"):
        state = spawn_and_run(s, admin, BOB, "proxy")
        assert run_code_sync(admin, BOB, "6 * 7") == "42"
        admin.stop_server(BOB)
    wait_until(lambda: s.emulator_instances()[state["instance_name"]]["state"] == "Stopped", 120, "bob's instance")
    switch_mode(s, "direct", timer)
    with timer.phase("direct mode again: start, kernel, stop"):
        state = spawn_and_run(s, admin, CAROL, "direct")
        assert state["scheme"] == "https"
        assert run_code_sync(admin, CAROL, "6 * 7") == "42"
        admin.stop_server(CAROL)


def sign_in_in_browser(s: ComposeStack, page, name: str) -> None:
    page.goto(f"{s.hub_url}/hub/oauth_login")
    page.wait_for_url(re.compile(rf"^{re.escape(s.emulator_url)}/.+/oauth2/authorize"))
    page.fill("#username", name)
    page.fill("#password", password(name))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^https://[^/]*{re.escape(HOST)}:{s.https_port}/(hub|user)/"))
