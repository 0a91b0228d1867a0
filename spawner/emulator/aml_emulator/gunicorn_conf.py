"""gunicorn settings for the emulator container:

    gunicorn -c python:aml_emulator.gunicorn_conf 'aml_emulator.app:gunicorn_app()'

The emulator keeps its state in the process, so it runs one worker (async:
aiohttp's gunicorn worker). Certificates and secret files are made before the
server binds, so a problem with one is a line here, not a worker's traceback.
"""

import os
import shlex

from aml_emulator.app import ensure_secrets
from aml_emulator.config import load_config
from aml_emulator.secretfiles import SecretFileError
from aml_emulator.tls import ensure_certificates, publish_ca

_config = load_config(shlex.split(os.environ.get("AML_EMULATOR_ARGS", "")))
try:
    ensure_secrets(_config)
except SecretFileError as e:
    raise SystemExit(f"aml-emulator: {e}") from None
_ca, _cert, _key = ensure_certificates(_config.state_dir / "tls", _config.hostnames)
publish_ca(_ca, _config.state_dir / "ca.pem", _config.ca_export)

bind = [f"{_config.host}:{_config.port}"]
workers = 1
worker_class = "aiohttp.GunicornWebWorker"
certfile = str(_cert)
keyfile = str(_key)
timeout = 120
graceful_timeout = 10
accesslog = None
