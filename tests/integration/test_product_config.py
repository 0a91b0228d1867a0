"""The product's own jupyterhub_config.py in a real hub process: what its
children inherit, what it leaves on disk, how it refuses a bad data dir or a
mistyped setting; and the hub's package in a fresh interpreter, without the
emulator."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.harness.hub import chp_command
from tests.harness.net import free_port, wait_for_http, wait_until
from tests.harness.processes import descendants, end_processes
from tests.harness.repo import ROOT, example_env

CANARY = "canary-secret-9f1c"
ANNOUNCEMENT = "Maintenance on Friday, from a drop-in file"
AZURE_ENV = {
    "LOCAL_MODE": "false",
    "AAD_TENANT_ID": "11111111-1111-1111-1111-111111111111", "AAD_CLIENT_ID": "c-id", "AAD_CLIENT_SECRET": CANARY + "-aad",
    "AAD_ALLOWED_GROUPS": "g1", "AML_SUBSCRIPTION_ID": "sub", "AML_RESOURCE_GROUP": "rg", "AML_WORKSPACE": "ws",
    "AZURE_TENANT_ID": "11111111-1111-1111-1111-111111111111", "AZURE_CLIENT_ID": "sp-id",
    "AZURE_CLIENT_SECRET": CANARY + "-azure",
    "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"),
    "AML_RECONCILE_INTERVAL": "0",  # no Azure here to list
}


def proc_environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def refusal_lines(cwd: Path, settings: dict) -> list[str]:
    """Run JupyterHub on the product's config file with only ``settings``
    (none inherited), which it must refuse: the lines it says it in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AML_", "AAD_", "HUB_", "AZURE_"))}
    # .env.example's HUB_ON_CONFIG_ERROR=wait would keep it waiting: these check that it exits
    env.update(settings, HUB_ON_CONFIG_ERROR="exit")
    r = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "hub" / "jupyterhub_config.py")],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return [line for line in r.stderr.splitlines() if "aml-jupyterhub" in line]


def start_product_hub(tmp_path: Path, **settings: str):
    """The real hub/jupyterhub_config.py, on free ports (its instances page's
    too), in Azure mode with canary secrets and ``settings``, started with
    SIGINT ignored as a script's background job or nohup starts it:
    (process, data dir, log path, port)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    wrapper = tmp_path / "jupyterhub_config.py"
    wrapper.write_text(
        f"exec(open({str(ROOT / 'hub' / 'jupyterhub_config.py')!r}).read())\n"
        f"c.JupyterHub.bind_url = 'http://127.0.0.1:{port}'\n"
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{hub_port}'\n"
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api_port}'\n"
        f"c.ConfigurableHTTPProxy.command = [{chp_command()!r}]\n"
        # what the product's config left the hub pages' announcement as, after its drop-in files
        f"open({str(tmp_path / 'announcement-carries-notices')!r}, 'w').write("
        "str(getattr(c.JupyterHub.template_vars.get('announcement'), 'carries_notices', False)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AML_", "AAD_", "HUB_", "AZURE_", "JUPYTERHUB_"))}
    # an admin's drop-in file, run after the settings (HUB_CONFIG_DIR)
    config_d = tmp_path / "config.d"
    config_d.mkdir()
    (config_d / "10-first.py").write_text("c.JupyterHub.template_vars = {'announcement': 'from the first file'}\n")
    (config_d / "20-announce.py").write_text(f"c.JupyterHub.template_vars = {{'announcement': {ANNOUNCEMENT!r}}}\n")
    env.update(AZURE_ENV, HUB_DATA_DIR=str(data), HUB_CONFIG_DIR=str(config_d),
               HUB_INSTANCES_PAGE_PORT=str(free_port()))
    env.update(settings)
    log_path = tmp_path / "hub.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(wrapper)], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for_http(f"http://127.0.0.1:{port}/hub/health", timeout=60, proc=proc,
                  log=lambda: log_path.read_text()[-3000:])
    return proc, data, log_path, port


def stop_product_hub(proc: subprocess.Popen) -> None:
    """Stop the hub, and end what it started that outlives it (its proxy stays on purpose, for the next hub)."""
    started = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    end_processes(started)


@pytest.fixture
def product_hub(tmp_path):
    proc, data, log_path, port = start_product_hub(tmp_path)
    yield proc, data, log_path, port
    stop_product_hub(proc)


def test_no_child_process_inherits_the_secrets(product_hub):
    proc, data, log_path, _ = product_hub
    chp = int((data / "proxy.pid").read_text())
    kids = children(proc.pid)
    assert chp in kids and len(kids) >= 2, kids  # the proxy and the idle culler
    for pid in kids:
        env = proc_environ(pid)
        assert CANARY.encode() not in env, (pid, Path(f"/proc/{pid}/cmdline").read_bytes())
    assert CANARY not in log_path.read_text()


def ignores_sigint(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    raise AssertionError(f"no SigIgn in /proc/{pid}/status")


def test_the_hubs_services_stop_at_sigint_though_the_hub_was_started_ignoring_it(product_hub):
    # JupyterHub stops its managed services with SIGINT, then waits 10 s for each: one that ignores
    # it holds the hub's shutdown, and outlives a hub killed meanwhile, holding its port
    proc, data, _, _ = product_hub
    chp = int((data / "proxy.pid").read_text())
    services = wait_until(lambda: [p for p in children(proc.pid) if p != chp][1:] and
                          [p for p in children(proc.pid) if p != chp], 30,
                          "the hub's two managed services (the idle culler, the instances page)")
    assert ignores_sigint(proc.pid) is False
    assert [p for p in services if ignores_sigint(p)] == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in services]


def test_the_data_dir_and_database_are_private(product_hub):
    _, data, _, _ = product_hub
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / "jupyterhub.sqlite").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data / "secrets").st_mode) == 0o700
    hub_id = data / "secrets" / "hub-id"
    wait_until(hub_id.exists, 30, f"{hub_id} (made once the hub has started)")
    assert hub_id.read_text().strip()


def our_tracebacks(log: str) -> bool:
    """A traceback through the product's code (the idle culler, not ours, may log one when the hub it
    asks goes away)."""
    return f"{os.sep}aml_jupyterhub{os.sep}" in log


def page_processes(hub: subprocess.Popen) -> list[int]:
    return [p for p in children(hub.pid) if b"aml_jupyterhub.instances_page" in Path(f"/proc/{p}/cmdline").read_bytes()]


def held_port() -> socket.socket:
    """A port another program holds (listening, as a server would)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_a_port_another_program_holds_leaves_the_page_out_with_one_line_and_the_hub_runs(tmp_path):
    holder = held_port()
    page_port = holder.getsockname()[1]
    proc, _, log_path, port = start_product_hub(tmp_path, HUB_INSTANCES_PAGE_PORT=str(page_port))
    try:
        log = log_path.read_text()
        assert (f"the instances page is off: another program holds port {page_port} on 127.0.0.1" in log
                and "HUB_INSTANCES_PAGE_PORT" in log), log[-3000:]
        # the hub runs on, with no page to wait for (JupyterHub exits when a managed service does not answer)
        assert requests.get(f"http://127.0.0.1:{port}/hub/health", timeout=10).status_code == 200
        assert page_processes(proc) == []
    finally:
        holder.close()
        started = descendants(proc.pid)  # its proxy outlives it on purpose
        proc.send_signal(signal.SIGTERM)
        try:
            returncode = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the hub did not stop at SIGTERM:\n" + log_path.read_text()[-3000:])
        finally:
            end_processes(started)
    assert returncode == 0 and not our_tracebacks(log_path.read_text()), log_path.read_text()[-3000:]


def gone(pid: int) -> bool:
    """The process has ended (an orphan's zombie counts: whoever adopted it may not reap it at once)."""
    try:
        return b"State:\tZ" in Path(f"/proc/{pid}/status").read_bytes()
    except FileNotFoundError:
        return True


def instances_page_of(hub: subprocess.Popen) -> int:
    return wait_until(lambda: page_processes(hub), 30, "the hub's instances page")[0]


def test_a_killed_hubs_instances_page_stops_by_itself_and_the_next_hub_gets_its_port(tmp_path):
    page_port = str(free_port())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, data, _, _ = start_product_hub(tmp_path / "a", HUB_INSTANCES_PAGE_PORT=page_port, HOST="localhost")
    left = {int((data / "proxy.pid").read_text())}  # the proxy (meant to outlive the hub) and the culler (not ours)
    second = None
    try:
        page = instances_page_of(first)
        left |= {p for p in children(first.pid) if p != page}
        first.kill()
        first.wait(10)
        # a hub started again at once (a supervisor's restart) on the same settings
        second, _, log_path, port = start_product_hub(tmp_path / "b", HUB_INSTANCES_PAGE_PORT=page_port, HOST="localhost")
        wait_until(lambda: gone(page), 30, "the instances page of the killed hub to stop")
        instances_page_of(second)
        # the new hub's page, behind its proxy: it sends a browser to the hub's OAuth
        # (on a host of its own, as users' servers: HOST=localhost here, HUB_USER_SUBDOMAINS by default)
        page_url = f"http://aml-instances--service.localhost:{port}/services/aml-instances/"
        r = wait_until(lambda: (lambda r: r if r.status_code == 302 and "oauth2/authorize" in r.headers["Location"]
                                else None)(requests.get(page_url, timeout=10, allow_redirects=False)),
                       30, "the new hub's instances page to answer")
        assert r.status_code == 302
        log = log_path.read_text()
        assert "instances page is off" not in log and not our_tracebacks(log), log[-3000:]
    finally:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if second:
            stop_product_hub(second)


def test_a_killed_hubs_idle_culler_stops_by_itself(tmp_path):
    """JupyterHub stops its services when it stops; a hub killed (out of memory, SIGKILL) cannot, and its
    culler, left running, would hold a dead hub's token (and memory) for good: it goes when the hub does."""
    hub, data, _, _ = start_product_hub(tmp_path)
    started = descendants(hub.pid)
    try:
        culler = wait_until(lambda: [p for p in children(hub.pid) if b"aml_jupyterhub.idle_culler" in
                                     Path(f"/proc/{p}/cmdline").read_bytes()], 30, "the hub's idle culler")[0]
        hub.kill()
        hub.wait(10)
        wait_until(lambda: gone(culler), 15, "the killed hub's idle culler to stop")
    finally:
        stop_product_hub(hub)
        end_processes(started)  # the proxy, which outlives a killed hub on purpose


def test_the_config_dir_files_run_after_the_settings_in_name_order(product_hub):
    *_, port = product_hub
    page = requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=10)
    assert ANNOUNCEMENT in page.text and "from the first file" not in page.text


def test_a_drop_in_announcement_keeps_the_runtime_limits_notices_beside_it(product_hub, tmp_path):
    """The drop-in files replace template_vars whole; the product's config puts the spawner's
    notices back after them (what they show: test_limits' runtime test, in a hub with a server)."""
    assert (tmp_path / "announcement-carries-notices").read_text() == "True"


@pytest.mark.parametrize("make_bad,words", [
    (lambda tmp: tmp / "a-file" / "data", "HUB_DATA_DIR="),
])
def test_an_unusable_data_dir_stops_the_hub_with_one_line(tmp_path, make_bad, words):
    (tmp_path / "a-file").write_text("not a directory")
    lines = refusal_lines(tmp_path, {**example_env(), "HUB_DATA_DIR": str(make_bad(tmp_path))})
    assert len(lines) == 1 and words in lines[0] and "cannot be used" in lines[0], lines


def test_hub_stops_with_one_line(tmp_path):
    """The real config file, run as JupyterHub would load it, on a typo."""
    lines = refusal_lines(tmp_path, {"AML_WORKSPAC": "x", "HUB_DATA_DIR": str(tmp_path)})
    assert lines == ["aml-jupyterhub: configuration error: AML_WORKSPAC is not a setting of aml-jupyterhub. "
                     "Did you mean AML_WORKSPACE?"]


def test_the_hub_package_does_not_import_the_emulator():
    r = subprocess.run([sys.executable, "-c", "import sys, aml_jupyterhub.hubconfig, aml_jupyterhub.aml_spawner, "
                        "aml_jupyterhub.settings; print(any(m.startswith('aml_emulator') for m in sys.modules))"],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr[-2000:]
    package = ROOT / "spawner" / "aml_jupyterhub"
    assert not [p for p in package.rglob("*.py") if "aml_emulator" in p.read_text()]


def test_a_config_error_waits_when_asked_and_ends_on_sigterm(tmp_path):
    """HUB_ON_CONFIG_ERROR=wait (the stack's): the hub says why and stays, instead of exiting into a restart loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AML_", "AAD_", "HUB_", "AZURE_"))}
    env.update(example_env(), HUB_DATA_DIR=str(tmp_path / "data"), AML_WORKSPAC="x", HUB_ON_CONFIG_ERROR="wait")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "hub" / "jupyterhub_config.py")],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # until the hub's stderr ends
    reader.start()
    try:
        # it says why (however long its start takes on a busy machine), then it stays
        wait_until(lambda: any("not starting; fix .env" in line for line in lines) or proc.poll() is not None,
                   120, "the hub to report the configuration error")
        time.sleep(2)
        assert proc.poll() is None, "the hub exited instead of waiting:\n" + "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        reader.join(10)
    err = "".join(lines)
    assert "AML_WORKSPAC is not a setting of aml-jupyterhub. Did you mean AML_WORKSPACE?" in err
    assert "not starting; fix .env" in err and "Traceback" not in err
