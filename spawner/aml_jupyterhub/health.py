"""The hub container's health check: ``python3 -m aml_jupyterhub.health``.

GET /hub/health on the hub's own port. With internal TLS (direct mode) the
hub speaks only TLS and wants a client certificate: the check then uses the
hub's own (hub-internal, in the data volume). Which one to try first follows
the configured mode (AML_CONNECT_MODE, in the container's environment), not
the certificates found: they stay in the volume after a switch back from
direct mode, and a TLS hello to a plain-HTTP hub is never answered (it only
times out), where plain HTTP to a TLS hub is refused at once. The other one
is the fallback.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from pathlib import Path

HUB = "127.0.0.1:8081"


def tls_context(certs: Path) -> ssl.SSLContext | None:
    """A client context with the hub's own certificate, if the hub has made one."""
    cert, key = certs / "hub-internal" / "hub-internal.crt", certs / "hub-internal" / "hub-internal.key"
    bundle = certs / "hub-ca_trust.crt"
    if not (cert.exists() and key.exists() and bundle.exists()):
        return None
    ctx = ssl.create_default_context(cafile=str(bundle))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def check(certs: Path, *, direct: bool, hub: str = HUB, timeout: float = 4) -> int:
    ctx = tls_context(certs)
    ways = [("https", ctx), ("http", None)] if ctx is not None else [("http", None)]
    if not direct:
        ways.reverse()
    for i, (scheme, context) in enumerate(ways):
        try:
            urllib.request.urlopen(f"{scheme}://{hub}/hub/health", timeout=timeout, context=context)
            return 0
        except OSError:
            if i == len(ways) - 1:
                raise
    return 1


def main() -> int:
    certs = Path(os.environ.get("HUB_DATA_DIR") or "/srv/jupyterhub") / "internal-ssl"
    try:
        return check(certs, direct=os.environ.get("AML_CONNECT_MODE", "").strip().lower() == "direct")
    except OSError as e:
        print(f"hub not healthy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
