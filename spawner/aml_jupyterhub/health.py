"""The hub container's health check: ``python3 -m aml_jupyterhub.health``.

GET /hub/health on the hub's own port. With internal TLS (direct mode) the
hub speaks only TLS and wants a client certificate: the check then uses the
hub's own (hub-internal, in the data volume), which it finds there. A hub
that made them once but now runs without internal TLS answers plain HTTP:
the check falls back to it.
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


def check(certs: Path, timeout: float = 4) -> int:
    ctx = tls_context(certs)
    if ctx is not None:
        try:
            urllib.request.urlopen(f"https://{HUB}/hub/health", timeout=timeout, context=ctx)
            return 0
        except ssl.SSLError:
            pass  # not speaking TLS: internal TLS is off now
        except OSError as e:
            if not isinstance(getattr(e, "reason", None), ssl.SSLError):
                raise
    urllib.request.urlopen(f"http://{HUB}/hub/health", timeout=timeout)
    return 0


def main() -> int:
    certs = Path(os.environ.get("HUB_DATA_DIR") or "/srv/jupyterhub") / "internal-ssl"
    try:
        return check(certs)
    except OSError as e:
        print(f"hub not healthy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
