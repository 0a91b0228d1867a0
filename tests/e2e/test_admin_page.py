"""The admin's instances page in the compose stack, driven in headless
Chromium: an admin reaches it from the hub's Services menu, sees a server's
instance with its owner, size, state and price, stops it with the page's
button; a user who is not an admin gets 403. Screenshots land in
tests/artifacts/e2e/ (the test's output, not committed)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.e2e.stack import HubApi, create_token, sign_in, upn, wait_until
from tests.e2e.test_compose_stack import Journal, chromium, shot, sign_in_with_azure_ad

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

CAROL, ALICE = upn("carol"), upn("alice")
SERVER = "pagetest"


def test_admin_page_lists_and_stops_a_server_and_refuses_non_admins(stack):
    session, _ = sign_in(stack, "carol")
    api = HubApi(stack, create_token(stack, session, CAROL, note="admin page e2e"))
    r = api.api("POST", f"/users/{quote(CAROL, safe='@')}/servers/{SERVER}", json={"user_options": {"profile": "small"}})
    assert r.status_code in (201, 202), r.text

    def ready():
        server = api.user_model(CAROL)["servers"].get(SERVER)
        return server if server and server.get("ready") else None

    wait_until(ready, 300, f"carol's server {SERVER} to be ready")
    instance = next(name for name, i in stack.emulator_instances().items()
                    if i["tags"].get("jupyterhub-user") == CAROL and i["tags"].get("jupyterhub-server") == SERVER)

    journal = Journal()
    with chromium(stack, journal) as page:
        sign_in_with_azure_ad(stack, page, "carol")
        page.wait_for_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/"))
        page.goto(f"{stack.hub_url}/hub/home")
        page.get_by_role("button", name="Services").or_(page.get_by_text("Services", exact=True)).first.click()
        page.get_by_role("link", name="aml-instances").click()
        page.wait_for_url(re.compile(rf"^{re.escape(stack.service_url('aml-instances'))}"), timeout=60_000)
        row = page.locator(f'tr[data-instance="{instance}"]')
        row.wait_for(timeout=60_000)
        text = row.inner_text()
        assert CAROL in text and SERVER in text and "Standard_DS2_v2" in text and "Running" in text, text
        assert re.search(r"\$\d+\.\d\d", text), text  # its price per hour
        shot(page, "20-admin-instances-page")
        page.on("dialog", lambda dialog: dialog.accept())  # "Stop ...? Its disk and files are kept."
        row.get_by_role("button", name="Stop").click()
        page.get_by_role("status").wait_for(timeout=120_000)
        assert f"server '{SERVER}' and its compute instance {instance}" in page.get_by_role("status").inner_text()
        shot(page, "21-admin-instances-page-stopping")

    wait_until(lambda: api.user_model(CAROL)["servers"].get(SERVER) is None, 180, "the page's stop to end the server")
    wait_until(lambda: stack.emulator_instances()[instance]["state"] == "Stopped", 180, "the instance to be Stopped")

    # alice is no admin: the page refuses her after the hub's OAuth
    alice, _ = sign_in(stack, "alice")
    r = alice.get(stack.service_url("aml-instances"), timeout=60)
    assert r.status_code == 403, (r.status_code, r.url, r.text[:300])
    assert api.api("DELETE", f"/users/{quote(CAROL, safe='@')}/servers/{SERVER}", json={"remove": True}).status_code \
        in (202, 204)
