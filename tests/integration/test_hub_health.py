"""The hub container's health check (``python3 -m aml_jupyterhub.health``) against a real
plain-HTTP server, with direct mode's certificates left in the data volume."""

from __future__ import annotations

import asyncio
import shutil
import threading

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from aml_jupyterhub.health import check
from tests.harness.tls import make_tls


class _Health(web.RequestHandler):
    def get(self):
        self.write("ok")


@pytest.fixture
def plain_hub():
    """A plain-HTTP tornado server, as the hub is without internal TLS: a TLS hello is
    not an HTTP request to it, and it answers nothing until one comes."""
    ready, box = threading.Event(), {}

    def serve():
        async def main():
            server = HTTPServer(web.Application([(r"/hub/health", _Health)]))
            sockets = bind_sockets(0, "127.0.0.1")
            server.add_sockets(sockets)
            box["port"], box["stop"] = sockets[0].getsockname()[1], asyncio.Event()
            ready.set()
            await box["stop"].wait()
            server.stop()

        box["loop"] = asyncio.new_event_loop()
        box["loop"].run_until_complete(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"127.0.0.1:{box['port']}"
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(10)


def leftover_certs(tmp_path):
    """What a hub that once ran in direct mode leaves in its volume (internal-ssl/)."""
    ca, cert, key = make_tls(tmp_path / "made")
    certs = tmp_path / "internal-ssl"
    (certs / "hub-internal").mkdir(parents=True)
    shutil.copy(cert, certs / "hub-internal" / "hub-internal.crt")
    shutil.copy(key, certs / "hub-internal" / "hub-internal.key")
    shutil.copy(ca, certs / "hub-ca_trust.crt")
    return certs


def test_a_plain_hub_is_healthy_though_direct_modes_certificates_are_still_there(tmp_path, plain_hub):
    # proxy or redirect mode after direct mode: a TLS hello would never be answered (it times out)
    assert check(leftover_certs(tmp_path), direct=False, hub=plain_hub, timeout=3) == 0


def test_direct_mode_falls_back_to_plain_http_when_the_hub_does_not_speak_tls(tmp_path, plain_hub):
    assert check(leftover_certs(tmp_path), direct=True, hub=plain_hub, timeout=1) == 0


def test_no_hub_is_unhealthy(tmp_path):
    with pytest.raises(OSError):
        check(tmp_path / "internal-ssl", direct=False, hub="127.0.0.1:9", timeout=1)
