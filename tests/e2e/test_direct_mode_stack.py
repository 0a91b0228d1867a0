"""Direct mode in the compose stack (AML_CONNECT_MODE=direct in .env, nothing
else): the hub turns on JupyterHub's internal TLS, the proxy's container takes
the proxy's certificates the hub shares and routes straight to the instance
container's address on the stack's network (its "VNet"), and the server there
takes only the hub's and the proxy's certificates. A stack of its own, beside
the session's."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import USERS
from tests.e2e.stack import ComposeStack, HubApi, create_token, run_code_sync, sign_in, upn, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

CAROL = upn("carol")

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
    s = ComposeStack(tmp_path_factory.mktemp("e2e-direct"), settings={"AML_CONNECT_MODE": "direct"})
    s.write_files()
    try:
        with timer.phase("direct mode: build (cached) and docker compose up -d --wait"):
            s.build()
            s.up()
        s.fetch_certs()
        s.wait_https()
        yield s
    except Exception:
        print(s.logs(150), flush=True)
        raise
    finally:
        with timer.phase("direct mode: teardown"):
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
    r = session.get(f"{s.hub_url}/services/aml-instances/", timeout=60)
    assert r.status_code == 200 and f'data-instance="{state["instance_name"]}"' in r.text, (r.status_code, r.text[:500])

    with timer.phase("direct mode: stop"):
        admin.stop_server(CAROL)
    wait_until(lambda: s.emulator_instances()[state["instance_name"]]["state"] == "Stopped", 60,
               "carol's instance to be stopped")
