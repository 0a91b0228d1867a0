"""The emulator served by gunicorn (as in its container): same app, same answers."""

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from azure.ai.ml.entities import ComputeInstance

from aml_jupyterhub.compute import StaticTokenCredential, make_ml_client
from tests.conftest import DEFAULT_RG, DEFAULT_SUB, DEFAULT_TOKEN, DEFAULT_WS, free_port


def test_gunicorn_serves_the_emulator(tmp_path):
    port = free_port()
    env = {**os.environ, "AML_EMULATOR_ARGS": f"--host 127.0.0.1 --port {port} --state-dir {tmp_path} "
                                              "--transition all=0.2 --poll-interval 0.2"}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", "python:aml_emulator.gunicorn_conf", "aml_emulator.app:gunicorn_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        ca = str(tmp_path / "ca.pem")
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"https://127.0.0.1:{port}/_emulator/health", verify=ca, timeout=2).ok:
                    break
            except (requests.ConnectionError, OSError):
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not serve the emulator"
            time.sleep(0.2)
        ml = make_ml_client(StaticTokenCredential(DEFAULT_TOKEN), DEFAULT_SUB, DEFAULT_RG, DEFAULT_WS,
                            arm_endpoint=f"https://127.0.0.1:{port}", ca_bundle=ca, polling_interval=1)
        made = ml.compute.begin_create_or_update(ComputeInstance(name="ci-guni", size="Standard_DS1_v2")).result()
        assert getattr(made.state, "value", made.state) == "Running"
        assert requests.post(f"https://127.0.0.1:{port}/_emulator/reset", verify=ca, timeout=30).ok
    finally:
        proc.terminate()
        proc.wait(20)
