"""The emulator served by gunicorn (as in its container): same app, same answers."""

import os
import subprocess
import sys
from pathlib import Path

import requests
from azure.ai.ml.entities import ComputeInstance

from aml_jupyterhub.compute import StaticTokenCredential, make_ml_client
from tests.harness.emulator import DEFAULT_RG, DEFAULT_SUB, DEFAULT_TOKEN, DEFAULT_WS
from tests.harness.net import free_port, wait_for_http


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
        wait_for_http(f"https://127.0.0.1:{port}/_emulator/health", timeout=30, verify=ca, proc=proc,
                      log=lambda: proc.stdout.read().decode())
        ml = make_ml_client(StaticTokenCredential(DEFAULT_TOKEN), DEFAULT_SUB, DEFAULT_RG, DEFAULT_WS,
                            arm_endpoint=f"https://127.0.0.1:{port}", ca_bundle=ca, polling_interval=1)
        made = ml.compute.begin_create_or_update(ComputeInstance(name="ci-guni", size="Standard_DS1_v2")).result()
        assert getattr(made.state, "value", made.state) == "Running"
        assert requests.post(f"https://127.0.0.1:{port}/_emulator/reset", verify=ca, timeout=30).ok
    finally:
        proc.terminate()
        proc.wait(20)
