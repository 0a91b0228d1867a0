"""End to end: the real images and compose.yaml in local mode, HTTPS through
Caddy, login through the emulated Azure AD in headless Chromium, spawn on an
emulated compute instance (a container), a kernel over the websocket, stop,
start, hub restart, and a whole-stack down/up.

The tests share one stack and run in order; each states what it needs and
starts alice's server itself if an earlier test did not leave it running.
Screenshots of the browser steps go to tests/artifacts/e2e/.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.stack import (
    ARTIFACTS, CADDY_ROOT_IN_VOLUME, EMULATOR_CA_IN_CONTAINER, HOST, ROOT, HubApi, create_token,
    console_run, host_network_settled, launch_chromium, password, run_code_sync,
    sign_in, ssl_context, upn, wait_until,
)
from tests.harness.kernel import KernelChannel

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

ALICE, BOB, CAROL, DAVE = upn("alice"), upn("bob"), upn("carol"), upn("dave")
ERIN = "erin@contoso.example"  # a B2B guest: the hub names her by her home address
SHOTS = ARTIFACTS / "e2e"
KEPT_FILE = "e2e-kept.txt"
SIZES = {"small": "Small", "medium": "Medium", "large": "Large", "gpu": "GPU"}


@pytest.fixture(scope="module")
def admin(stack) -> HubApi:
    """carol (Hub Admins), signed in through the emulated Azure AD, with an API token."""
    session, page = sign_in(stack, "carol")
    assert page.status_code == 200 and page.url.startswith(stack.hub_url), (page.status_code, page.url, page.text[:500])
    return HubApi(stack, create_token(stack, session, CAROL))


@pytest.fixture(scope="module")
def kept_text(stack) -> str:
    return f"written through Caddy by the e2e run {stack.project}\n"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


class Journal(list):
    """What the browser did: main-frame navigations and failed requests, for
    the failure message of a step that stalls."""

    def watch(self, page) -> None:
        page.on("framenavigated", lambda f: f == page.main_frame and self.append(f"navigated {f.url[:160]}"))
        page.on("requestfailed", lambda r: self.append(f"failed {r.method} {r.url[:160]}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.append(f"{r.status} {r.request.method} {r.url[:160]}"))
        page.on("websocket", self._watch_websocket)

    def _watch_websocket(self, ws) -> None:
        self.append(f"websocket opened {ws.url[:160]}")
        ws.on("close", lambda w: self.append(f"websocket closed {w.url[:160]}"))
        ws.on("socketerror", lambda e: self.append(f"websocket error {ws.url[:100]}: {e}"))

    def __str__(self) -> str:
        return "\n".join(self[-40:])


@contextmanager
def chromium(stack, journal: Journal | None = None):
    """Headless Chromium trusting Caddy's and the emulator's CAs (no ignore_https_errors)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p, stack)
        try:
            ctx = b.new_context(viewport={"width": 1280, "height": 900})
            ctx.set_default_timeout(60_000)
            page = ctx.new_page()
            if journal is not None:
                journal.watch(page)
            yield page
        finally:
            b.close()


def sign_in_with_azure_ad(stack, page, name: str, first_shot: str | None = None,
                          second_shot: str | None = None) -> None:
    """From the hub's login page through the emulated Azure AD login page."""
    page.goto(f"{stack.hub_url}/")
    page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/login"))
    button = page.get_by_text(re.compile(r"Sign in with Azure AD"))
    button.wait_for()
    if first_shot:
        shot(page, first_shot)
    button.click()
    page.wait_for_url(re.compile(rf"^{re.escape(stack.emulator_url)}/.+/oauth2/authorize"))
    page.locator("#username").wait_for()
    assert "Sign in" in page.title() or "Sign in" in page.content()
    page.fill("#username", name)
    page.fill("#password", password(name))
    if second_shot:
        shot(page, second_shot)
    page.get_by_role("button", name="Sign in").click()


def ensure_running(admin: HubApi, user: str) -> None:
    """Start the user's server if an earlier test did not leave it running."""
    if admin.server(user) is None:
        admin.start_server(user, {"profile": "medium"})
    admin.wait_ready(user)


# ---- 1 ---------------------------------------------------------------------------


def test_https_through_caddy(stack):
    r = requests.get(f"{stack.hub_url}/hub/health", verify=str(stack.caddy_root), timeout=30)
    assert r.status_code == 200, r.text
    assert re.match(r"max-age=\d+", r.headers.get("Strict-Transport-Security", "")), r.headers

    r = requests.get(f"http://{HOST}:{stack.http_port}/hub/health", allow_redirects=False, timeout=30)
    assert r.status_code in (301, 302, 307, 308), (r.status_code, r.headers)
    assert r.headers["Location"].startswith(f"{stack.hub_url}/"), r.headers

    # The certificate is from Caddy's own CA: it verifies with that root only.
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection((HOST, stack.https_port), timeout=30) as sock:
            ssl.create_default_context().wrap_socket(sock, server_hostname=HOST)

    # A user's host gets its certificate only when the hub's tls-names says the name is its: the hub's own
    # service host does, a name no user or service has gets none (Caddy asked the hub, at hub:8082)
    trusted = ssl.create_default_context(cafile=str(stack.caddy_root))
    service_host = stack.service_url("aml-instances").split("/")[2].split(":")[0]
    with socket.create_connection((HOST, stack.https_port), timeout=30) as sock:
        trusted.wrap_socket(sock, server_hostname=service_host).close()
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection((HOST, stack.https_port), timeout=30) as sock:
            trusted.wrap_socket(sock, server_hostname=f"nobody-{stack.project}.{HOST}")
    with socket.create_connection((HOST, stack.https_port), timeout=30) as sock:
        with ssl_context(stack.caddy_root).wrap_socket(sock, server_hostname=HOST) as tls:
            issuer = dict(item for rdn in tls.getpeercert()["issuer"] for item in rdn)
    assert "Caddy Local Authority" in issuer.get("commonName", ""), issuer
    # README tells a user to copy out the two CAs from where this suite takes them
    readme = (ROOT / "README.md").read_text()
    assert f"docker compose cp caddy:{CADDY_ROOT_IN_VOLUME} root.crt" in readme
    assert f"docker compose cp emulator:{EMULATOR_CA_IN_CONTAINER} emulator-ca.pem" in readme
    r = requests.get(f"{stack.emulator_url}/_emulator/health", verify=str(stack.emulator_ca), timeout=30)
    assert r.status_code == 200, r.text


def test_prices_command_runs_in_the_hub_image_into_the_data_volume(stack):
    """README's refresh, as an admin runs it (against the emulator's Retail Prices API in local mode)."""
    r = stack.compose("run", "--rm", "--no-deps", "hub", "aml-jupyterhub-prices", "--region", "westeurope",
                      "--api", "https://emulator:8443/api/retail/prices", "--ca-bundle", "/srv/emulator-ca/ca.pem",
                      timeout=180)
    assert "westeurope: 11 of 16 sizes priced" in r.stdout, (r.stdout, r.stderr)
    assert "wrote /srv/jupyterhub/prices.json" in r.stdout
    readme = (ROOT / "README.md").read_text()
    assert r.stdout.strip().splitlines()[-1] in readme and "docker compose run --rm hub aml-jupyterhub-prices" in readme
    table = json.loads(stack.compose("exec", "-T", "hub", "cat", "/srv/jupyterhub/prices.json").stdout)
    assert table["regions"]["westeurope"]["Standard_DS2_v2"] > 0


def test_doctor_passes_in_the_stack_as_make_doctor_runs_it(stack):
    r = stack.compose("run", "--rm", "-T", "hub", "aml-jupyterhub-doctor", timeout=180, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
    lines = [line for line in r.stdout.splitlines() if line[:4] in ("ok  ", "FAIL", "skip")]
    assert lines and not any(line.startswith("FAIL") for line in lines), r.stdout
    names = [line[5:].split(":", 1)[0] for line in lines]
    assert {"Azure AD tenant", "redirect URI", "workspace", "roles", "sizes", "quota", "tunnel service"} <= set(names)
    assert any(line.startswith("ok   tunnel service") for line in lines), r.stdout  # compose's tunnels container
    print(r.stdout)
    # README shows a real run: the same checks, in the same order
    readme = (ROOT / "README.md").read_text()
    sample = readme.split("A run in local mode", 1)[1].split("```", 2)[1]
    assert [line[5:].split(":", 1)[0] for line in sample.splitlines() if line[:4] in ("ok  ", "FAIL", "skip")] == names


# PID 1 and what descends from it, as the hub's user sees them (a `docker exec` has no parent in the container)
PROCESSES = """
import json, os
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        procs[pid] = {"ppid": stat[1], "cmdline": open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0"),
                      "environ": open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace").split("\\0")}
    except OSError:
        pass
tree, grew = {"1"}, True
while grew:
    more = {pid for pid, p in procs.items() if p["ppid"] in tree} - tree
    tree, grew = tree | more, bool(more)
print(json.dumps({pid: procs[pid] for pid in tree if pid in procs}))
"""


def test_no_secret_in_the_environ_of_pid_1_the_hub_or_its_services(stack):
    """Issue 24 (8): the services run as the hub's user and could read any of these."""
    from aml_jupyterhub.settings import SECRET_VARIABLES

    given = dict(line.split("=", 1) for line in stack.env_file.read_text().splitlines()
                 if line.split("=", 1)[0] in SECRET_VARIABLES and line.split("=", 1)[1])
    assert "AAD_CLIENT_SECRET" in given, given.keys()  # what the stack has
    # local mode's ARM token is in no setting: the emulator made it, the hub reads it from their shared volume
    given["the emulator's ARM token"] = stack.compose("exec", "-T", "emulator", "cat", "/srv/emulator-ca/arm-token",
                                                      timeout=60).stdout.strip()
    procs = json.loads(stack.compose("exec", "-T", "hub", "python3", "-c", PROCESSES, timeout=60).stdout)
    commands = [" ".join(p["cmdline"]) for p in procs.values()]
    for service in ("aml_jupyterhub.idle_culler", "aml_jupyterhub.instances_page"):
        assert any(service in c for c in commands), commands
    for pid, p in procs.items():
        environ = "\n".join(p["environ"])
        leaked = [name for name, value in given.items() if name in environ or value in environ]
        assert not leaked, f"{', '.join(leaked)} in the environ of {pid} ({' '.join(p['cmdline'])[:100]})"


# ---- 2 ---------------------------------------------------------------------------


def test_browser_login_spawn_form_progress_and_jupyterlab(stack, timer):
    from playwright.sync_api import Error as PlaywrightError

    journal = Journal()
    with chromium(stack, journal) as page:
        with timer.phase("browser: hub -> Azure AD login -> spawn form"):
            sign_in_with_azure_ad(stack, page, "alice", "01-hub-login", "02-azure-ad-login")
            page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/spawn"))
            radios = page.locator("input[type=radio][name=profile]")
            radios.first.wait_for()
            assert radios.evaluate_all("els => els.map(e => e.value)") == list(SIZES)
            for slug, title in SIZES.items():
                label = page.locator(f"label[for=aml-profile-{slug}]")
                text = label.inner_text()
                assert title in text and re.search(r"\d+ vCPUs? · \d+ GiB RAM", text), text
            page.check("#aml-profile-medium")
            shot(page, "03-spawn-form")

        with timer.phase("browser: spawn (progress page) -> JupyterLab"):
            page.locator("#spawn_form [type=submit]").click(no_wait_after=True)
            messages: list[str] = []
            values: list[str] = []
            progress_shot = False
            deadline = time.monotonic() + 300
            while "/lab" not in page.url:
                if time.monotonic() > deadline:
                    shot(page, "99-timed-out")
                    raise AssertionError(f"no JupyterLab after 300 s, at {page.url}; progress seen: {messages}\n"
                                         f"browser journal:\n{journal}")
                if "/spawn-pending/" in page.url:
                    try:
                        message = page.locator("#progress-message").inner_text(timeout=1000).strip()
                        value = page.locator("#progress-bar").get_attribute("aria-valuenow", timeout=1000)
                        log = page.locator("#progress-log .progress-log-event").all_text_contents()
                        failed = "bg-danger" in (page.locator("#progress-bar").get_attribute("class") or "")
                    except PlaywrightError:  # the page moved on meanwhile
                        continue
                    assert not failed, f"the spawn failed: {log}"
                    for m in [*log, message]:
                        if m and m not in messages:
                            messages.append(m)
                    if value and (not values or values[-1] != value):
                        values.append(value)
                    if not progress_shot and re.search(r"Creating|Starting", message):
                        page.locator("#progress-details summary").click()  # open the event log
                        shot(page, "04-spawn-progress")
                        progress_shot = True
                page.wait_for_timeout(150)
            print(f"\n[e2e] progress seen in the browser: {values} {messages}")
            assert progress_shot, f"the progress page never showed Creating/Starting: {messages}"
            assert len(messages) >= 2 and len(values) >= 2, (values, messages)
            assert any("Creating compute instance" in m for m in messages), messages
            try:
                page.locator("#jp-main-dock-panel").wait_for(state="visible", timeout=180_000)
                page.locator(".jp-Launcher").first.wait_for(state="visible", timeout=120_000)
            except PlaywrightError:
                shot(page, "99-no-jupyterlab")
                raise AssertionError(f"JupyterLab did not show at {page.url}\nbrowser journal:\n{journal}") from None
            # AML's kernels, as its own JupyterLab lists them (the hub installed JupyterHub beside them)
            cards = page.locator('.jp-LauncherCard[data-category="Notebook"] .jp-LauncherCard-label')
            cards.first.wait_for(state="visible", timeout=60_000)
            labels = cards.all_inner_texts()
            assert any("Python 3.10 - SDK v2" in t for t in labels), labels
            assert any("Python 3.8 - AzureML" in t for t in labels), labels
            # the hub decided (AML_LAB_NEWS off): JupyterLab asks no one about fetching Jupyter's news; its
            # question is a toast shown once JupyterLab has restored, so give it a moment to show
            try:
                page.get_by_text("official Jupyter news").first.wait_for(state="visible", timeout=5_000)
            except PlaywrightTimeoutError:
                pass
            else:
                shot(page, "99-news-prompt")
                raise AssertionError("JupyterLab asked about the official Jupyter news; the hub should decide it")
            shot(page, "05-jupyterlab")
            # on alice's own host, not the hub's (HUB_USER_SUBDOMAINS)
            assert re.match(rf"^{re.escape(stack.user_origin(ALICE))}/user/alice(@|%40)aml-local\.example/lab",
                            page.url), page.url

    inst = stack.emulator_instances()[stack.instance_name(ALICE)]
    assert inst["vm_size"] == "Standard_DS3_v2" and inst["state"] == "Running", inst


# ---- 3 ---------------------------------------------------------------------------


def test_user_outside_the_allowed_groups_is_refused(stack, admin):
    """dave is in no allowed group: his page says who he is, whom the hub
    admits and whom to ask, and its sign-out also ends his Azure AD session
    (without it, "sign in" would let Azure AD sign dave in again at once)."""
    journal = Journal()
    callback = re.compile(rf"^{re.escape(stack.hub_url)}/hub/oauth_callback")
    with chromium(stack, journal) as page:  # a fresh browser: no Azure AD session of alice's
        sign_in_with_azure_ad(stack, page, "dave")
        page.wait_for_url(callback)
        page.locator("#aml-refused").wait_for()
        body = page.locator("body").inner_text()
        shot(page, "06-dave-refused")
        assert "Dave Dunn" in body and DAVE in body and "Data Science" in body, body
        assert body.count("may not use this hub") == 1 and "ask your hub's administrator" in body, body
        assert any(e.startswith(f"403 GET {stack.hub_url}/hub/oauth_callback") for e in journal), str(journal)

        # Azure AD still has his session: signing in again is dave again, no password asked
        page.goto(f"{stack.hub_url}/hub/oauth_login")
        page.wait_for_url(callback)
        assert page.locator("#aml-refused").count() == 1

        page.click("#aml-sign-out")
        page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/login"))
        page.get_by_text(re.compile(r"Sign in with Azure AD")).click()
        page.wait_for_url(re.compile(rf"^{re.escape(stack.emulator_url)}/.+/oauth2/authorize"))
        page.locator("#password").wait_for()  # the login form again: another account can sign in
        shot(page, "07-dave-signed-out")
    assert admin.api("GET", admin.user_path(DAVE)).status_code == 404  # never became a hub user


# ---- 4 ---------------------------------------------------------------------------


def test_kernel_over_websocket_through_caddy(stack, admin, kept_text, timer):
    ensure_running(admin, ALICE)
    with timer.phase("kernel: start, 1+1 over wss, contents"):
        assert admin.server_url(ALICE).startswith(f"{stack.user_origin(ALICE)}/user/")
        assert run_code_sync(admin, ALICE, "1+1") == "2"
        r = admin.user_request("PUT", ALICE, f"api/contents/{KEPT_FILE}",
                               json={"type": "file", "format": "text", "content": kept_text})
        assert r.status_code in (200, 201), r.text
        assert admin.user_request("GET", ALICE, f"api/contents/{KEPT_FILE}").json()["content"] == kept_text


# ---- 4b: a page on one user's server cannot act as whoever opens it -------------------------------------------

# What a user controls on their own server (sudo on the instance, any server extension): here a server extension
# on alice's that serves a page without asking anyone to log in, whose script tries, with the visitor's browser,
# what worked when every server shared the hub's origin (issue 24, item 1). Each attack has a control: the same
# code aimed at alice's own host, which must work, so a "blocked" means the origin stopped it, not broken code.
ATTACK_EXTENSION = r'''
import os
from tornado import web

PAGE = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "attack.html")).read()


class AttackPage(web.RequestHandler):  # no login: any visitor's browser runs it
    def get(self):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(PAGE)


def _jupyter_server_extension_points():
    return [{"module": "attack_ext"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(base + "attack", AttackPage)])
'''

ATTACK_PAGE = r'''<!doctype html><html><head><meta charset="utf-8"><title>alice's page</title></head><body>
<button id="go">go</button><pre id="results"></pre>
<script>
const q = new URLSearchParams(location.search);
const R = {};
const wait = ms => new Promise(r => setTimeout(r, ms));
function frameRead(url) {
  return new Promise(done => {
    const f = document.createElement("iframe");
    f.src = url;
    f.onload = () => { try { done("read: " + f.contentDocument.body.innerText.slice(0, 300)); }
                       catch (e) { done("blocked: " + e.name); } };
    setTimeout(() => done("blocked: no load"), 20000);
    document.body.appendChild(f);
  });
}
async function send(url, opts) {
  try { const r = await fetch(url, {credentials: "include", ...opts}); return "answered " + r.status + ": " + (await r.text()).slice(0, 200); }
  catch (e) { return "blocked: " + e.name; }
}
async function drive(w, contents) {
  // as in the attack: in the visitor's own JupyterLab, with its cookies, write a file into their home
  for (let i = 0; i < 40; i++) {
    await wait(500);
    try {
      if (w.document.readyState !== "complete") continue;
      const xsrf = (w.document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
      const r = await w.fetch(contents, {method: "PUT", headers: {"X-XSRFToken": xsrf, "Content-Type": "application/json"},
                                         body: JSON.stringify({type: "file", format: "text", content: "pwned"})});
      return "wrote: " + r.status;
    } catch (e) { if (e.name === "SecurityError") return "blocked: SecurityError"; }
  }
  return "blocked: timed out";
}
document.getElementById("go").onclick = async () => {
  const popup = q.get("popup") ? window.open(q.get("popup")) : null;      // one click, as in the attack
  const own = q.get("own") ? window.open(q.get("own")) : null;
  if (q.get("instances")) {
    R.frame_instances_page = await frameRead(q.get("instances"));
    R.frame_own_page = await frameRead(location.pathname + "?framed=1");   // control
    R.hub_api_list_users = await send(q.get("hub") + "/hub/api/users", {});
    R.hub_api_stop_server = await send(q.get("hub") + "/hub/api/users/" + encodeURIComponent(q.get("victim")) + "/server", {method: "DELETE"});
  }
  if (popup) { R.drive_visitors_lab = await drive(popup, q.get("popup_contents")); popup.close(); }
  if (own) { R.drive_own_host = await drive(own, q.get("own_contents")); own.close(); }
  document.getElementById("results").textContent = JSON.stringify(R);
  document.body.setAttribute("data-done", "1");
};
</script></body></html>
'''


def install_attack_extension(admin: HubApi, user: str) -> None:
    """alice, from her own notebook: the extension and the config that loads it, in her home."""
    code = (f"import os, pathlib; d = pathlib.Path.home() / '.attack'; d.mkdir(exist_ok=True); "
            f"(d / 'attack_ext.py').write_text({ATTACK_EXTENSION!r}); (d / 'attack.html').write_text({ATTACK_PAGE!r}); "
            f"c = pathlib.Path.home() / '.jupyter'; c.mkdir(exist_ok=True); "
            f"(c / 'jupyter_server_config.py').write_text('import sys; sys.path.insert(0, ' + repr(str(d)) + ')\\n'"
            f" + 'c.ServerApp.jpserver_extensions = {{\"attack_ext\": True}}\\n'); 'installed'")
    assert run_code_sync(admin, user, code) == "'installed'"


def remove_attack_extension(admin: HubApi, user: str) -> None:
    code = ("import pathlib, shutil; shutil.rmtree(pathlib.Path.home() / '.attack', ignore_errors=True); "
            "(pathlib.Path.home() / '.jupyter' / 'jupyter_server_config.py').unlink(missing_ok=True); 'removed'")
    assert run_code_sync(admin, user, code) == "'removed'"


def attack_results(stack, page, url: str) -> dict:
    page.goto(url)
    page.locator("#go").click()
    page.locator("body[data-done='1']").wait_for(timeout=120_000)
    return json.loads(page.locator("#results").inner_text())


def test_a_page_on_alices_server_cannot_act_as_whoever_opens_it(stack, admin, timer):
    """Issue 24, item 1, as the attack went: (a) carol, an admin, opens a page of alice's server; its script
    frames the instances page and calls the hub's API with carol's browser (no click). (b) bob opens it and
    clicks once; it opens bob's JupyterLab in a popup and drives it. With each user's server on a host of
    its own both fail, while the same code aimed at alice's own host works.

    (On *.localhost each user's host is a site of its own; under a public HOST all of them are one site, so
    the hub's cookies go with same-site requests there: what stops (a) is CORS and the hub's XSRF check, not
    SameSite, and this test relies on neither being relaxed.)"""
    from playwright.sync_api import sync_playwright

    for name in ("alice", "bob"):
        sign_in(stack, name)  # users of the hub (their first logins, when this test runs alone)
    with timer.phase("attack: alice's server with her extension, bob's server"):
        ensure_running(admin, ALICE)
        install_attack_extension(admin, ALICE)
        admin.stop_server(ALICE)
        admin.start_server(ALICE, {"profile": "medium"})
        ensure_running(admin, BOB)
        admin.wait_ready(ALICE)
    alice_page = admin.server_url(ALICE) + "attack"
    bob_lab = admin.server_url(BOB) + "lab"
    contents = "api/contents/pwned-by-alice.txt"
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p, stack)
            try:
                # (a) carol, signed in to the hub (and so to the instances page), opens alice's page
                carol = browser.new_context().new_page()
                carol.set_default_timeout(60_000)
                sign_in_with_azure_ad(stack, carol, "carol")
                carol.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/"))
                carol.goto(stack.service_url("aml-instances"))
                carol.locator("tr[data-instance]").first.wait_for()
                seen = attack_results(stack, carol, alice_page + "?" + urlencode({
                    "instances": stack.service_url("aml-instances"), "hub": stack.hub_url, "victim": BOB}))
                print(f"\n[e2e] the admin on alice's page: {seen}")
                assert seen["frame_own_page"].startswith("read: "), seen  # control: framing on one origin works
                assert seen["frame_instances_page"].startswith("blocked"), seen
                assert seen["hub_api_list_users"].startswith("blocked"), seen
                assert seen["hub_api_stop_server"].startswith("blocked"), seen
                assert admin.server(BOB) is not None, "bob's server was stopped by alice's page"

                # (b) bob, with his own JupyterLab open once (its cookies are in his browser), opens it and clicks
                bob = browser.new_context().new_page()
                bob.set_default_timeout(60_000)
                sign_in_with_azure_ad(stack, bob, "bob")
                bob.wait_for_url(re.compile(rf"^https://[^/]*{re.escape(HOST)}:{stack.https_port}/(hub|user)/"))
                bob.goto(bob_lab)
                bob.locator("#jp-main-dock-panel").wait_for(state="visible", timeout=120_000)
                seen = attack_results(stack, bob, alice_page + "?" + urlencode({
                    "popup": bob_lab, "popup_contents": admin.server_url(BOB) + contents}))
                # control (a click of its own: one popup per click): the same drive of a window on alice's host
                seen.update(attack_results(stack, bob, alice_page + "?" + urlencode({
                    "own": alice_page + "?idle=1", "own_contents": alice_page})))
                print(f"[e2e] bob on alice's page: {seen}")
                assert seen["drive_visitors_lab"] == "blocked: SecurityError", seen
                assert seen["drive_own_host"].startswith("wrote: "), seen  # the same code reaches its own origin
            finally:
                browser.close()
        assert admin.user_request("GET", BOB, contents).status_code == 404, "alice's page wrote into bob's home"
        assert admin.server(BOB) is not None
    finally:
        remove_attack_extension(admin, ALICE)
        admin.stop_server(BOB)


def test_a_named_server_on_another_instance_sees_the_workspace_share(stack, admin, timer):
    """The workspace file share is one per workspace, as on AML: a file alice writes to
    ~/cloudfiles/code on her default server's instance is in the file browser of her named server,
    on another instance, which opens in the share as AML's own JupyterLab does."""
    ensure_running(admin, ALICE)
    name, text = f"share-{stack.project}.txt", "written on alice's default server\n"
    r = admin.user_request("PUT", ALICE, f"api/contents/cloudfiles/code/{name}",
                           json={"type": "file", "format": "text", "content": text})
    assert r.status_code in (200, 201), r.text
    second = admin.user_path(ALICE) + "/servers/second"
    with timer.phase("a named server on a second instance (its own first start: the hub installs JupyterHub)"):
        r = admin.api("POST", second, json={"user_options": {"profile": "small"}})
        assert r.status_code in (201, 202), (r.status_code, r.text)
        wait_until(lambda: (admin.user_model(ALICE)["servers"].get("second") or {}).get("ready"), 300,
                   "alice's named server", interval=1)
    assert stack.instance_name(ALICE, "second") != stack.instance_name(ALICE)
    second_url = admin.server_url(ALICE, "second")
    r = admin.session.get(f"{second_url}api/contents/cloudfiles/code/{name}", timeout=60)
    assert r.status_code == 200 and r.json()["content"] == text, r.text
    with chromium(stack) as page:
        sign_in_with_azure_ad(stack, page, "alice")
        page.wait_for_url(re.compile(rf"^({re.escape(stack.hub_url)}|{re.escape(stack.user_origin(ALICE))})/(hub|user)/"))
        page.goto(f"{second_url}lab")
        page.locator(".jp-DirListing-content").get_by_text(name).wait_for(state="visible", timeout=120_000)
        crumbs = page.locator(".jp-BreadCrumbs").inner_text()
        assert "code" in crumbs, crumbs  # the file browser opened in the share
        shot(page, "06-share-seen-from-a-named-server")
    r = admin.api("DELETE", second)
    assert r.status_code in (202, 204), r.text
    wait_until(lambda: "second" not in admin.user_model(ALICE)["servers"], 180, "the named server to stop", interval=1)


# ---- 5 ---------------------------------------------------------------------------


def test_stop_server_stops_the_instance(stack, admin, timer):
    ensure_running(admin, ALICE)
    name = stack.instance_name(ALICE)
    with timer.phase("stop the server"):
        admin.stop_server(ALICE)
    assert stack.emulator_instances()[name]["state"] == "Stopped"
    assert stack.container_state(f"aml-ci-{name}") == "exited"


def _instances_of(stack, user: str, server: str = "") -> list[str]:
    """The names of the emulator's instances tagged as the instances of ``user``'s server
    (other tests' users, and named servers, have theirs)."""
    return sorted(n for n, i in stack.emulator_instances().items()
                  if (i.get("tags") or {}).get("jupyterhub-user") == user
                  and (i.get("tags") or {}).get("jupyterhub-server") == (server or "default"))


def _instance_state(stack, user: str) -> str:
    return stack.emulator_instances()[stack.instance_name(user)]["state"]


def _no_failure_shown(page, journal: Journal, what: str) -> None:
    text = page.locator("body").inner_text()
    assert "API request failed" not in text and "Failed to" not in text, f"{what}: the page says\n{text[:2000]}"
    changed = [line for line in journal if "ERR_NETWORK_CHANGED" in line]
    assert not changed, f"{what}: the browser aborted requests on a network change:\n{journal}"


def test_stop_and_start_buttons_tell_the_truth(stack, admin, timer):
    """The user's Stop/Start on /hub/home and an admin's on the admin page, clicked in the browser:
    each says what happened (they said "API request failed" while the emulator's instances
    changed the host's network under the browser)."""
    journal = Journal()
    with timer.phase("browser: Stop My Server / Start My Server"), chromium(stack, journal) as page:
        sign_in_with_azure_ad(stack, page, "bob")  # his first visit: the spawn form
        page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/spawn"))
        page.check("#aml-profile-medium")
        page.locator("#spawn_form [type=submit]").click(no_wait_after=True)
        page.wait_for_url(re.compile(r"/lab"), timeout=300_000)
        page.goto(f"{stack.hub_url}/hub/home")
        # home.js binds the button once requirejs has loaded it, after the load event: a click
        # before that does nothing, so click until the page shows it heard one (#start disabled)
        page.wait_for_load_state("networkidle")

        def stop_heard() -> bool:
            page.locator("#stop").click()
            return page.locator("#start").get_attribute("disabled") is not None or not page.locator("#stop").is_visible()

        # for up to a minute, not a number of tries: on a loaded machine requirejs takes its time
        wait_until(stop_heard, 60, "the home page to take the Stop click", interval=0.5)
        page.locator("#stop").wait_for(state="hidden", timeout=180_000)  # hidden only when the API said it stopped
        start = page.locator("#start")
        assert start.inner_text().strip() == "Start My Server"
        shot(page, "06-home-after-stop")
        _no_failure_shown(page, journal, "Stop My Server")
        wait_until(lambda: _instance_state(stack, BOB) == "Stopped", 120, "bob's instance Stopped")
        start.click()
        page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/spawn"))
        # before Start: the form says which instance he has, its size, and what another size does
        note = page.locator("#aml-existing-instance")
        note.wait_for()
        text = note.inner_text()
        assert stack.instance_name(BOB) in text and "Standard_DS3_v2" in text and "resizes it first" in text, text
        assert page.locator("#aml-profile-medium").is_checked()
        shot(page, "07-spawn-form-existing-instance")
        page.check("#aml-profile-medium")
        page.locator("#spawn_form [type=submit]").click(no_wait_after=True)
        page.wait_for_url(re.compile(r"/lab"), timeout=300_000)
        _no_failure_shown(page, journal, "Start My Server")
        assert _instance_state(stack, BOB) == "Running"

    journal = Journal()
    with timer.phase("browser: the admin page's Stop Server / Start Server"), chromium(stack, journal) as page:
        sign_in_with_azure_ad(stack, page, "carol")
        page.wait_for_url(re.compile(rf"^https://[^/]*{re.escape(HOST)}:{stack.https_port}/(user|hub)/"))
        page.goto(f"{stack.hub_url}/hub/admin")
        row = page.get_by_role("row").filter(has_text="bob@")
        row.get_by_role("button", name="Stop Server").click()
        row.get_by_role("button", name="Start Server").wait_for(timeout=180_000)
        shot(page, "08-admin-after-stop")
        _no_failure_shown(page, journal, "the admin's Stop Server")
        wait_until(lambda: _instance_state(stack, BOB) == "Stopped", 120, "bob's instance Stopped")
        row.get_by_role("button", name="Start Server").click()
        # the admin page updates the row from the start request's answer: when the spawn outlasts
        # the hub's slow_spawn_timeout (a loaded machine) that answer is "pending" and the row
        # stays as it was, so the page is reloaded (as the admin would) until it shows the server
        def shows_bob_running() -> bool:
            try:
                page.get_by_role("row").filter(has_text="bob@").get_by_role("button", name="Stop Server").wait_for(
                    timeout=10_000)
                return True
            except PlaywrightTimeoutError:
                page.reload()
                return False

        wait_until(shows_bob_running, 300, "the admin page to show bob's server running", interval=0)
        shot(page, "08-admin-after-start")
        _no_failure_shown(page, journal, "the admin's Start Server")
    admin.wait_ready(BOB)
    assert _instance_state(stack, BOB) == "Running"


# ---- 6 ---------------------------------------------------------------------------


def _arm_calls(stack, since: int = 0) -> list[tuple[str, str]]:
    """(method, last path segment) of the ARM requests the emulator saw, from index ``since``."""
    entries = stack.emulator("GET", "/_emulator/requests").json()
    return [(r["method"], r["path"].rstrip("/").rsplit("/", 1)[-1]) for r in entries[since:]]


def test_start_again_then_hub_restart_keeps_the_server(stack, admin, timer):
    name = stack.instance_name(ALICE)
    seen = len(_arm_calls(stack))
    with timer.phase("start the stopped server again"):
        if admin.server(ALICE) is None:
            admin.start_server(ALICE, {"profile": "medium"})
        admin.wait_ready(ALICE)
    calls = _arm_calls(stack, seen)
    # the Stopped instance was started, not created again
    assert ("POST", "start") in calls and not any(m == "PUT" for m, _ in calls), calls
    assert _instances_of(stack, ALICE) == [name]

    with timer.phase("docker compose restart hub -> server reachable"):
        code = stack.restart("hub")
        assert code != 137, "the hub did not stop on SIGTERM within compose's grace period and was killed"
        wait_until(lambda: requests.get(f"{stack.hub_url}/hub/health", verify=str(stack.caddy_root), timeout=10).ok,
                   120, "the hub to answer through Caddy after its restart")
        wait_until(lambda: admin.user_request("GET", ALICE, "api/status", timeout=10).status_code == 200,
                   120, "alice's server to answer through the restarted hub")
    assert admin.server(ALICE)["ready"]
    assert run_code_sync(admin, ALICE, "2+3") == "5"
    instances = stack.emulator_instances()
    assert _instances_of(stack, ALICE) == [name] and instances[name]["state"] == "Running", instances
    calls = _arm_calls(stack, seen)
    assert not any(m in ("PUT", "DELETE") for m, _ in calls), calls


class BackgroundKernel:
    """A KernelChannel on a loop of its own thread, so a synchronous test can
    keep one websocket open across steps."""

    def __init__(self, api_url: str, token: str, ssl_ctx):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channel = KernelChannel(api_url, token, ssl_ctx)
        self._call(self.channel.__aenter__())

    def _call(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, code: str) -> str:
        return self._call(self.channel.run(code))

    def close(self) -> bool:
        """Closes it; whether the socket had been lost before."""
        lost = self.channel.ws.closed
        self._call(self.channel.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        return lost


def _hub_health(stack, timeout: float) -> requests.Response:
    return requests.get(f"{stack.hub_url}/hub/health", verify=str(stack.caddy_root), timeout=timeout)


def test_jupyterlab_open_across_a_hub_restart_needs_no_reload(stack, admin, timer):
    """A user's JupyterLab, open while the hub restarts, runs code again in the same page with no
    dialog, and an open kernel websocket is not even interrupted: the proxy and the tunnels live in
    the proxy's container, which the hub's restart leaves alone. While the hub is away the user's
    server answers; /hub/ pages say the hub is restarting."""
    journal = Journal()
    with chromium(stack, journal) as page:
        sign_in_with_azure_ad(stack, page, "erin")  # her first visit: the spawn form, then her JupyterLab
        page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/spawn"))
        page.check("#aml-profile-small")
        page.locator("#spawn_form [type=submit]").click(no_wait_after=True)
        page.wait_for_url(re.compile(r"/user/[^/]+/lab"), timeout=300_000)
        page.locator(".jp-Launcher").first.wait_for(state="visible", timeout=120_000)
        page.locator('.jp-LauncherCard[data-category="Console"]').first.click()
        page.get_by_text(re.compile(r"\| Idle")).first.wait_for(timeout=120_000)  # the console's kernel is up
        console_run(page, "21*2", "42", timeout_ms=60_000)
        server_api = admin.server_url(ERIN) + "api/status"  # asked below while the hub is away

        # a second kernel's websocket through Caddy, kept open across the restart (as JupyterLab's is)
        kernel = BackgroundKernel(admin.server_url(ERIN) + "api", admin.token, ssl_context(stack.caddy_root))
        assert kernel.run("x = 6 * 7; x") == "42"

        with timer.phase("docker compose restart hub, erin's server asked all along"):
            # what JupyterLab asks while it reconnects: a 502 (nothing behind Caddy) or 404 (a proxy
            # without routes) makes it declare the kernel dead, a 503 makes it offer to restart the server
            answers: list = []
            done = threading.Event()

            def ask():
                while not done.is_set():
                    try:
                        answers.append(admin.session.get(server_api, timeout=60).status_code)  # redirects followed
                    except requests.RequestException as e:
                        answers.append(type(e).__name__)
                    time.sleep(0.2)

            asking = threading.Thread(target=ask)
            asking.start()
            try:
                assert stack.stop("hub") != 137, "the hub did not stop on SIGTERM within compose's grace period"
                during = kernel.run("x + 1")  # the hub is down: the same socket, the same kernel
                stack.start("hub")
                wait_until(lambda: _hub_health(stack, timeout=10).ok, 120, "the hub to answer again")
                wait_until(lambda: answers and answers[-1] == 200, 120, "erin's server to answer")
            finally:
                done.set()
                asking.join(90)
            after = kernel.run("x + 2")
            lost = kernel.close()
            # every request to her server was answered, the kernel's socket was never cut
            assert set(answers) == {200}, f"answers while the hub was away: {answers}"
            assert (during, after, lost) == ("43", "44", False), (during, after, lost)
            print(f"\n[e2e] across the hub's restart: {len(answers)} requests to erin's server, all 200; "
                  "0 websockets lost", flush=True)
            host_network_settled()  # the hub's container came back with a new interface

        deadline = time.monotonic() + 180
        dialogs = []
        while True:  # the same page: no reload
            dialog = page.locator(".jp-Dialog")
            if dialog.count():
                dialogs.append(dialog.first.inner_text()[:300])
                shot(page, "10-jupyterlab-dialog-during-hub-restart")
                dialog.first.locator("button").last.click()  # what a user does: dismiss it and go on
            try:
                console_run(page, "6*7+1", "43", timeout_ms=15_000)
                break
            except Exception:
                if time.monotonic() > deadline:
                    shot(page, "99-jupyterlab-after-hub-restart")
                    raise AssertionError(f"JupyterLab ran no code within 180 s of the hub's restart without a "
                                         f"reload; dialogs: {dialogs}\nbrowser journal:\n{journal}")
        shot(page, "10-jupyterlab-after-hub-restart")
        # Chromium here shares its host with Docker and aborts requests in flight when the hub's
        # container brings its network interface (net::ERR_NETWORK_CHANGED; a user's browser on
        # another machine never sees that): JupyterLab then offers to restart the server, which a
        # user dismisses. Any other dialog, and that one without the aborts, is a failure.
        print(f"\n[e2e] JupyterLab across the hub's restart: dialogs {dialogs or 'none'}", flush=True)
        aborted = any("ERR_NETWORK_CHANGED" in line for line in journal)
        unexplained = [d for d in dialogs if not (aborted and d.startswith("Server unavailable or unreachable"))]
        assert not unexplained, f"JupyterLab showed dialogs across the hub's restart: {dialogs}\n{journal}"

    with timer.phase("the hub away: its pages say so, users' servers go on"):
        status_url = admin.server_url(ERIN) + "api/status"  # (the hub's API says where, before it goes)
        assert stack.stop("hub") != 137
        try:
            away = requests.get(f"{stack.hub_url}/hub/home", verify=str(stack.caddy_root), timeout=30)
            server = admin.session.get(status_url, timeout=30)
        finally:
            stack.start("hub")
        assert away.status_code == 503, (away.status_code, away.text[:300])
        assert "JupyterHub is not answering" in away.text and "not affected" in away.text, away.text[:500]
        assert server.status_code == 200, (server.status_code, server.text[:300])
        wait_until(lambda: _hub_health(stack, timeout=10).ok, 120, "the hub to answer through Caddy again")


# ---- 7 ---------------------------------------------------------------------------


def test_compose_down_and_up_keeps_users_tokens_and_files(stack, admin, kept_text, timer):
    # the earlier tests' ARM traffic was recorded and checked against AML's definitions (conftest)
    assert stack.arm_responses_checked > 0, "the stack's emulator recorded no ARM response: nothing was checked"
    ensure_running(admin, ALICE)
    root_before = stack.caddy_root.read_text()
    with timer.phase("docker compose down (volumes kept) + up --wait"):
        r = stack.down(volumes=False)
        assert r.returncode == 0, f"compose down failed:\n{r.stdout}\n{r.stderr}"
        stack.up()
        stack.fetch_certs()
        stack.wait_https()
    assert stack.caddy_root.read_text() == root_before, "Caddy made a new CA: its volume was lost"

    # the token lives in the hub's database, on its volume
    me = admin.api("GET", "/user")
    assert me.status_code == 200 and me.json()["name"] == CAROL, me.text
    assert admin.user_model(ALICE)["name"] == ALICE

    # alice's instance kept running while the stack was down (as a VM outlives
    # the hub): the new hub finds her server again, through new tunnels
    assert admin.server(ALICE) is not None, "the hub forgot alice's running server"
    with timer.phase("alice's server reachable after down/up"):
        wait_until(lambda: admin.user_request("GET", ALICE, "api/status", timeout=10).status_code == 200,
                   120, "alice's server to answer after compose down/up")

    with timer.phase("stop and start alice's server after down/up"):
        admin.stop_server(ALICE)
        admin.start_server(ALICE, {"profile": "medium"})
        admin.wait_ready(ALICE)
    r = admin.user_request("GET", ALICE, f"api/contents/{KEPT_FILE}")
    assert r.status_code == 200, r.text
    assert r.json()["content"] == kept_text
    assert _instances_of(stack, ALICE) == [stack.instance_name(ALICE)]


def test_backup_lost_volumes_restore_brings_users_servers_and_files_back(stack, admin, kept_text, timer):
    """`make backup` while the hub runs; then the stack down and its volumes
    lost (all but the emulator's); `make restore`, `up`: the same users,
    tokens, browser sessions, servers and Caddy CA, and no instance made again."""
    import shlex
    import stat
    import subprocess
    from pathlib import Path

    browser_session, home = sign_in(stack, "alice")  # a browser's hub cookie, from before the backup
    assert home.status_code == 200 and home.url.startswith(stack.hub_url), (home.status_code, home.url)
    ensure_running(admin, ALICE)
    if admin.user_request("GET", ALICE, f"api/contents/{KEPT_FILE}").status_code == 404:  # the kernel test did not run
        r = admin.user_request("PUT", ALICE, f"api/contents/{KEPT_FILE}",
                               json={"type": "file", "format": "text", "content": kept_text})
        assert r.status_code in (200, 201), r.text
    users_before = sorted(u["name"] for u in admin.api("GET", "/users").json())
    root_before = stack.caddy_root.read_text()

    def this_hubs_instances() -> dict[str, dict]:
        return {n: i for n, i in stack.emulator_instances().items()
                if (i.get("tags") or {}).get("jupyterhub-hub") == stack.hub_id}

    instances_before = this_hubs_instances()
    assert stack.instance_name(ALICE) in instances_before, instances_before
    cookie_secret = stack.compose("exec", "-T", "hub", "cat", "/srv/jupyterhub/secrets/cookie_secret").stdout.strip()
    assert len(cookie_secret) >= 32

    # as a user runs them, with the stack's compose command (its project, env file and override)
    backups = stack.workdir / "backups"
    env = {**stack.env, "BACKUP_DIR": str(backups)}

    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", *args, f"COMPOSE={shlex.join(stack.compose_command())}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)

    with timer.phase("make backup (the hub running)"):
        r = make("backup")
    said = r.stdout + r.stderr
    assert r.returncode == 0, said
    print(said)
    wrote = re.search(r"^wrote (\S+\.tar\.gz) ", r.stdout, re.M)
    assert wrote, said
    archive = Path(wrote.group(1))
    assert archive.parent == backups and archive.is_file(), said
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600 and stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert cookie_secret not in said
    assert re.search(r"the hub's database: a snapshot of jupyterhub.sqlite \(\d+ users\)", said), said

    with timer.phase("docker compose down; every volume but the emulator's removed"):
        r = stack.down(volumes=False)
        assert r.returncode == 0, f"compose down failed:\n{r.stdout}\n{r.stderr}"
        volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                                  f"label=com.docker.compose.project={stack.project}"],
                                 capture_output=True, text=True, check=True).stdout.split()
        # emulator-data and emulator-ca stand in for Azure itself (the workspace, its compute
        # instances and their disks, Azure AD): a restore of the hub does not touch them, so they stay
        azure = {f"{stack.project}_emulator-data", f"{stack.project}_emulator-ca"}
        lost = sorted(set(volumes) - azure)
        hubs = {f"{stack.project}_{v}" for v in ("hub-data", "caddy-data", "caddy-config", "proxy-secrets")}
        assert hubs <= set(lost), volumes
        subprocess.run(["docker", "volume", "rm", *lost], capture_output=True, text=True, check=True)

    with timer.phase("make restore into new volumes, then up --wait"):
        r = make("restore", f"FILE={archive}")
        said = r.stdout + r.stderr
        assert r.returncode == 0, said
        print(said)
        assert "restored; start the hub with it: make up" in r.stdout and cookie_secret not in said, said
        stack.up()
        stack.fetch_certs()
        stack.wait_https()
    assert stack.caddy_root.read_text() == root_before, "Caddy made a new CA: its certificates were not restored"

    # the users, the admin's API token (in the database), a browser's login cookie (the cookie secret)
    me = admin.api("GET", "/user")
    assert me.status_code == 200 and me.json()["name"] == CAROL, me.text
    assert sorted(u["name"] for u in admin.api("GET", "/users").json()) == users_before
    assert admin.user_model(ALICE)["name"] == ALICE
    r = browser_session.get(f"{stack.hub_url}/hub/home", allow_redirects=False, timeout=60)
    assert r.status_code == 200, f"the browser was sent to log in again: {r.status_code} {r.headers.get('Location')}"
    assert "alice" in r.text

    # alice's instance ran on while the hub's data was gone: the restored hub finds her server again
    assert admin.server(ALICE) is not None, "the restored hub forgot alice's running server"
    with timer.phase("alice's server reachable after the restore"):
        wait_until(lambda: admin.user_request("GET", ALICE, "api/status", timeout=10).status_code == 200,
                   120, "alice's server to answer after the restore")
    r = admin.user_request("GET", ALICE, f"api/contents/{KEPT_FILE}")
    assert r.status_code == 200 and r.json()["content"] == kept_text, r.text

    # no instance of this hub made twice (the same ones, created when they were; the emulator's
    # request log starts with this up), none running without a server
    instances = this_hubs_instances()
    assert {n: i["created_on"] for n, i in instances.items()} == \
        {n: i["created_on"] for n, i in instances_before.items()}, instances
    assert not [c for c in _arm_calls(stack) if c[0] == "PUT"], _arm_calls(stack)
    for name, inst in instances.items():
        if inst["state"] == "Running":
            user, server = inst["tags"]["jupyterhub-user"], inst["tags"]["jupyterhub-server"]
            servers = admin.user_model(user)["servers"]
            assert ("" if server == "default" else server) in servers, f"{name} runs without a server: {servers}"


# ---- 8 ---------------------------------------------------------------------------


def test_beside_a_demo_stack_and_make_clean_local_removes_it_all(stack, demo, admin):
    """The whole run above shared the engine with a demo (make up, the
    default ports and network) and an instance it left; `make clean-local`
    then leaves nothing of the demo's project."""
    if demo.copy is None:
        pytest.skip("the demo on this engine is the user's own (or AML_E2E_NO_DEMO=1): not removed")
    assert admin.api("GET", "/").status_code == 200  # our stack still answers
    said = demo.down()  # the demo's instance still runs: make down says so in its own words, no Docker error
    assert "1 emulated compute instance(s) still running" in said and "Resource is still in use" not in said, said
    said = demo.up()  # and the other order: make up while this suite's stack runs
    assert "aml-jupyterhub is up: https://localhost/" in said, said[-3000:]
    assert admin.api("GET", "/").status_code == 200
    left = demo.remove()
    assert left == [], left
    assert admin.api("GET", "/").status_code == 200  # and is untouched by the demo's removal
