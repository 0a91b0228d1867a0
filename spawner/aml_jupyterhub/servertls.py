"""A server's TLS certificate when the hub runs with internal TLS
(JupyterHub's ``internal_ssl``; direct mode turns it on).

JupyterHub makes a server's certificate before ``start()``, when nobody yet
knows the address the proxy will reach the server at (the instance may not
even exist). The spawner therefore makes it itself once the instance runs,
naming that address, signed by the hub's notebooks CA; the key and
certificate are pushed to the instance over SSH and removed from the hub's
disk at once: only the instance holds the server's key.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS_CA = "notebooks-ca"

# certipy rewrites one JSON file for the whole store: one certificate at a time
_store_lock = threading.Lock()


@dataclass(frozen=True)
class ServerTLS:
    key: str  # PEM
    cert: str  # PEM, signed by the notebooks CA
    ca: str  # PEM bundle: whom the server trusts as its clients (the hub and the proxy)


def alt_names(hosts) -> list[str]:
    """Subject alternative names for the addresses a server is reached at,
    plus the loopback names JupyterHub's own certificates carry."""
    names = ["DNS:localhost", "IP:127.0.0.1"]
    for host in hosts:
        if not host:
            continue
        try:
            name = f"IP:{ipaddress.ip_address(host)}"
        except ValueError:
            name = f"DNS:{host}"
        if name not in names:
            names.append(name)
    return names


def make_server_tls(store_dir: str, record: str, names: list[str], ca_bundle: str) -> ServerTLS:
    """A key and certificate for ``names`` (blocking: call it in a thread).
    ``record`` must be the server's own name in the store (a directory of it)."""
    from certipy import Certipy

    with _store_lock:
        certipy = Certipy(store_dir=store_dir)
        pair = certipy.create_signed_pair(record, NOTEBOOKS_CA, alt_names=names, overwrite=True)
        files = pair["files"]
        try:
            key, cert = Path(files["key"]).read_text(), Path(files["cert"]).read_text()
        finally:
            certipy.store.remove_files(record, delete_dir=True)
    return ServerTLS(key=key, cert=cert, ca=Path(ca_bundle).read_text())
