"""The data plane: how fast a user's bytes go, and what the hub feels of
it, side by side in one run: proxy mode with the tunnels in the proxy's
container (OpenSSH, the product's layout), proxy mode with the tunnels in the
hub process (a hub run without the proxy container, and every hub before
0.2), and direct mode (CHP straight to the server, internal TLS).

Instances are the emulator's process runtime (local processes with their own
sshd), so "straight from the server" is the notebook server's own port on
this machine: the ratio is what the tunnel and proxy cost, not the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import requests

from tests.bench.common import percentile
from tests.harness.emulator import EmulatorProcess
from tests.harness.hub import Hub, spawn_ready
from tests.harness.kernel import KernelChannel, execute
from tests.harness.proxyservice import ProxyService

MB = 1 << 20
SIZE_MB = 64


def _download(session: requests.Session, url: str, rate_mb: float = 0, size_mb: int = SIZE_MB) -> float:
    """MB/s of one GET of ``url`` (``size_mb`` long), read to the end (at most ``rate_mb`` MB/s
    when given, as a user's connection over the internet would take it)."""
    t0 = time.perf_counter()
    got = 0
    with session.get(url, stream=True, timeout=120) as r:
        r.raise_for_status()
        for chunk in r.iter_content(1 << 16):
            got += len(chunk)
            if rate_mb:
                ahead = got / MB / rate_mb - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    assert got == size_mb * MB, got
    return got / MB / (time.perf_counter() - t0)


def _make_file(hub: Hub, user: str) -> None:
    code = f"import os; open('bench.bin', 'wb').write(os.urandom({SIZE_MB * MB})); 0"
    assert asyncio.run(execute(f"{hub.url}/user/{user}/api", hub.token, code)) == "0"


def _server_port(hub: Hub, user: str) -> int:
    model = hub.api("GET", f"/users/{user}").json()["servers"][""]
    return int(model["state"]["remote_port"])


def _token_session(token: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"token {token}"
    return s


def _session(hub: Hub) -> requests.Session:
    return _token_session(hub.token)


def _api_latencies(hub: Hub, seconds: float) -> list[float]:
    s = _session(hub)
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        r = s.get(f"{hub.url}/hub/api/users/bench0", timeout=30)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
        time.sleep(0.02)
    return out


def _download_loop(url: str, token: str, rate_mb: float, ready, stop, moved) -> None:
    """One user downloading ``url`` over and over until ``stop`` (in a process of its own)."""
    s = _token_session(token)
    ready.put(True)
    while not stop.is_set():
        _download(s, url, rate_mb)
        moved.put(SIZE_MB)


@contextlib.contextmanager
def _users_as_threads(hub: Hub, users: list[str], rate_mb: float):
    """Every user downloading in a loop, as threads of this process (the
    probe's: they hold Python's GIL while it waits); yields the list of MB
    each completed download moved, whole once the block has ended."""
    stop = threading.Event()
    moved = []

    def download_loop(user: str) -> None:
        s = _session(hub)
        while not stop.is_set():
            _download(s, f"{hub.url}/user/{user}/files/bench.bin", rate_mb)
            moved.append(SIZE_MB)

    threads = [threading.Thread(target=download_loop, args=(u,)) for u in users]
    for t in threads:
        t.start()
    try:
        yield moved
    finally:
        stop.set()
        for t in threads:
            t.join(120)


@contextlib.contextmanager
def _users_as_processes(hub: Hub, users: list[str], rate_mb: float):
    """As :func:`_users_as_threads`, each user in a process of their own, as
    users' browsers are."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop, moved = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_download_loop, daemon=True,
                         args=(f"{hub.url}/user/{u}/files/bench.bin", hub.token, rate_mb, ready, stop, moved))
             for u in users]
    for p in procs:
        p.start()
    done: list[float] = []
    try:
        for _ in procs:
            ready.get(timeout=60)
        yield done
    finally:
        stop.set()
        for p in procs:
            p.join(120)
            if p.is_alive():
                p.kill()
        while not moved.empty():
            done.append(moved.get())


def _latency_under_load(hub: Hub, load, users: list[str], seconds: float = 10,
                        rate_mb: float = 0) -> tuple[list[float], float]:
    """The hub API's latencies while ``load`` (one of the two above) runs;
    the users' total MB/s, until the last download ended."""
    with load(hub, users, rate_mb) as moved:
        t0 = time.perf_counter()
        latencies = _api_latencies(hub, seconds)
    return latencies, sum(moved) / (time.perf_counter() - t0)


def _kill_and_restart(hub: Hub, user: str) -> tuple[int, float, str]:
    """The hub killed and started again while ``user``'s kernel websocket is
    open and their server is asked every 50 ms: (websockets lost, longest run
    of failed requests in seconds, the kernel's answer afterwards)."""
    failures: list[tuple[float, bool]] = []
    stop = threading.Event()

    def ask() -> None:
        s = _session(hub)
        while not stop.is_set():
            try:
                ok = s.get(f"{hub.url}/user/{user}/api/status", timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            failures.append((time.perf_counter(), ok))
            time.sleep(0.05)

    async def across() -> tuple[int, str]:
        async with KernelChannel(f"{hub.url}/user/{user}/api", hub.token) as kernel:
            await kernel.run("x = 1; x")
            hub.kill()
            await asyncio.to_thread(hub.start)
            try:
                answer = await kernel.run("x + 1", timeout=30)
            except (AssertionError, asyncio.TimeoutError, aiohttp.ClientError) as e:
                answer = f"lost ({str(e)[:60]})"
            return (1 if kernel.ws.closed or answer.startswith("lost") else 0), answer

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        lost, answer = asyncio.run(across())
        hub.wait_for(lambda: hub.user_get(user, "api/status").status_code == 200, 120, what="the server again")
    finally:
        stop.set()
        asker.join(30)
    longest, run_start = 0.0, None
    for t, ok in failures:
        if not ok and run_start is None:
            run_start = t
        elif ok and run_start is not None:
            longest, run_start = max(longest, t - run_start), None
    return lost, longest, answer


def bench_dataplane(rounds: int = 3, users: int = 4) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        emu = EmulatorProcess(tmp / "emu", ["--transition", "all=0.2", "--poll-interval", "0.2"]).start()
        proxy = ProxyService(tmp / "proxy").start()
        direct_proxy = ProxyService(tmp / "proxy-direct").start()  # compose's layout in direct mode too
        direct_certs = tmp / "hub-direct" / "internal-ssl"
        layouts = {
            "tunnel service (ssh in the tunnels container)": Hub(tmp / "hub-svc", emu, "c.Spawner.poll_interval = 3600\n",
                                                                 proxy=proxy),
            "tunnels in the hub process (asyncssh)": Hub(tmp / "hub-inhub", emu, "c.Spawner.poll_interval = 3600\n"),
            "direct mode (internal TLS, no tunnel)": Hub(tmp / "hub-direct", emu, f"""
                c.Spawner.poll_interval = 3600
                c.JupyterHub.internal_ssl = True
                c.JupyterHub.internal_certs_location = "{direct_certs}"
                c.ConfigurableHTTPProxy.api_url = "https://127.0.0.1:{direct_proxy.api_port}"
                c.HubDefaultProxy.tls_share_dir = "{direct_proxy.tls_dir}"
                c.AMLSpawner.tunnel_service_url = ""
                c.AMLSpawner.connect_mode = "direct"
                c.AMLSpawner.ssh_address = "private"
            """, proxy=direct_proxy),
        }
        try:
            for hub in layouts.values():
                hub.start()
                for i in range(users):
                    spawn_ready(hub, f"bench{i}")
                _make_file(hub, "bench0")
                for i in range(1, users):
                    _make_file(hub, f"bench{i}")
            # one download of each kind per round, interleaved, so the machine's noise hits them alike
            speeds: dict[str, list[float]] = {"straight": [], **{name: [] for name in layouts}}
            any_hub = next(iter(layouts.values()))
            straight_url = (f"http://127.0.0.1:{_server_port(any_hub, 'bench0')}/user/bench0/files/bench.bin")
            (tunnel,) = proxy.tunnels().values() if len(proxy.tunnels()) == 1 else [
                t for t in proxy.tunnels().values() if t["name"].startswith("bench0-")]
            tunnel_only = f"http://127.0.0.1:{tunnel['local_port']}/user/bench0/files/bench.bin"
            speeds["the tunnel service's ssh alone (no CHP)"] = []
            # the direct-mode server's own port over TLS, with the proxy's certificate: what CHP costs there
            direct_hub = layouts["direct mode (internal TLS, no tunnel)"]
            straight_tls = _session(direct_hub)
            straight_tls.cert = (str(direct_certs / "proxy-client" / "proxy-client.crt"),
                                 str(direct_certs / "proxy-client" / "proxy-client.key"))
            straight_tls.verify = str(direct_certs / "proxy-client-ca_trust.crt")
            straight_tls_url = (f"https://127.0.0.1:{_server_port(direct_hub, 'bench0')}/user/bench0/files/bench.bin")
            speeds["straight over TLS"] = []
            for _ in range(rounds):
                speeds["straight"].append(_download(_session(any_hub), straight_url))
                speeds["straight over TLS"].append(_download(straight_tls, straight_tls_url))
                speeds["the tunnel service's ssh alone (no CHP)"].append(
                    _download(_session(layouts[next(iter(layouts))]), tunnel_only))
                for name, hub in layouts.items():
                    speeds[name].append(_download(_session(hub), f"{hub.url}/user/bench0/files/bench.bin"))
            base = statistics.median(speeds.pop("straight"))
            base_tls = statistics.median(speeds.pop("straight over TLS"))
            print(f"one {SIZE_MB} MB download, median of {rounds}, interleaved (client, proxy, tunnel, sshd and "
                  "server share this machine's cores)")
            print(f"  {'straight from the notebook server':<58} {base:7.0f} MB/s")
            print(f"  {'straight from it over internal TLS (as CHP reaches it)':<58} {base_tls:7.0f} MB/s  ratio "
                  f"{base_tls / base:.2f}")
            for name, values in speeds.items():
                label = name if name.startswith("the tunnel") else (
                    "through CHP, " + name if name.startswith("direct") else "through CHP and " + name)
                got = statistics.median(values)
                print(f"  {label:<58} {got:7.0f} MB/s  ratio {got / base:.2f}"
                      + (f" ({got / base_tls:.2f} of straight over TLS)" if name.startswith("direct") else ""))

            rate = 25
            print(f"hub API latency (GET /hub/api/users/bench0), idle and while {users} users download in a loop "
                  f"at up to {rate} MB/s each")
            # short windows, alternating between the layouts, so the machine's noise hits both alike
            # the downloads as threads of this process (the probe's own), and side by side as a process
            # per user: the difference is what the probe waits for Python's GIL, not the hub
            probes = {"users as threads of the probe's process": _users_as_threads,
                      "users as processes of their own": _users_as_processes}
            idle = {name: [] for name in layouts}
            busy = {(name, how): [] for name in layouts for how in probes}
            moved = {(name, how): [] for name in layouts for how in probes}
            for _ in range(rounds):
                for name, hub in layouts.items():
                    idle[name] += _api_latencies(hub, 1.5)
                    for how, load in probes.items():
                        got, total = _latency_under_load(hub, load, [f"bench{i}" for i in range(users)], seconds=4,
                                                         rate_mb=rate)
                        busy[name, how] += got
                        moved[name, how].append(total)
            for name in layouts:
                print(f"  {name:<48} idle p50 {percentile(idle[name], 50):5.1f} ms p99 "
                      f"{percentile(idle[name], 99):5.1f} ms")
                for how in probes:
                    got = busy[name, how]
                    print(f"    loaded, {how:<42} p50 {percentile(got, 50):5.1f} ms p99 "
                          f"{percentile(got, 99):6.1f} ms ({statistics.median(moved[name, how]):.0f} MB/s moved, "
                          f"{len(got)} requests)")

            print("the hub killed and started again, a kernel websocket open, the server asked every 50 ms")
            for name, hub in layouts.items():
                lost, gap, answer = _kill_and_restart(hub, "bench1")
                print(f"  {name:<48} websockets lost {lost}, longest failing stretch {gap:4.1f} s, "
                      f"the kernel afterwards: {answer}")
        finally:
            for hub in layouts.values():
                for i in range(users):
                    hub.api("DELETE", f"/users/bench{i}/server")
            time.sleep(3)
            for hub in layouts.values():
                hub.stop()
            proxy.stop()
            direct_proxy.stop()
            emu.reset()
            emu.stop()
