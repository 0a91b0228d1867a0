"""``python -m aml_emulator``: serve the emulator over HTTPS."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from .app import create_app
from .config import load_config
from .secretfiles import SecretFileError
from .tls import ensure_certificates, publish_ca, server_ssl_context


def main(argv: list[str] | None = None) -> None:
    config = load_config(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    ca, cert, key = ensure_certificates(config.state_dir / "tls", config.hostnames)
    # Clients trust this file (ca_bundle / REQUESTS_CA_BUNDLE); documented as DIR/ca.pem.
    publish_ca(ca, config.state_dir / "ca.pem", config.ca_export)
    try:
        app = create_app(config)
    except SecretFileError as e:
        sys.exit(f"aml-emulator: {e}")
    print(
        f"aml emulator: https://{config.host}:{config.port} (runtime {config.runtime}); "
        f"trust {config.state_dir / 'ca.pem'}",
        flush=True,
    )
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        ssl_context=server_ssl_context(cert, key),
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
