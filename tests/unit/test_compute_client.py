"""The compute client's own logic (compute/client.py, compute/sdk.py) with a
fake azure-ai-ml underneath: its retry and time budgets, long operations and
their progress, and what ensure_running does from each state an instance can
be in. The real SDK against the emulator: tests/contract/test_compute_client_emulator.py."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from aml_jupyterhub.compute import (
    Busy,
    ComputeClient,
    ForeignInstance,
    InstanceFailed,
    InstanceSpec,
    NotFound,
    OperationTimeout,
    PermissionDenied,
    ServiceUnavailable,
    StaticTokenCredential,
    make_ml_client,
)
from aml_jupyterhub.compute.sdk import _MFE_ENV

pytestmark = pytest.mark.asyncio
SPEC = InstanceSpec("ci-alice", "Standard_DS1_v2", tags={"jupyterhub-user": "alice"})


def http_error(status: int, cls=HttpResponseError, message: str | None = None):
    """An SDK error for an HTTP answer of ``status``."""
    response = SimpleNamespace(status_code=status, reason="", headers={}, content_type="application/json",
                               request=None, text=lambda encoding=None: "{}")
    return cls(message=message, response=response)


class Poller:
    """An LROPoller as the client uses it; done when ``finish()`` is called (from any thread)."""

    def __init__(self, result=None, error: Exception | None = None, percents=(), done: bool = True):
        self._result, self._error = result, error
        self._percents = list(percents)
        self._callbacks = []
        self._done = False
        if done:
            self.finish()

    def finish(self):
        self._done = True
        for cb in self._callbacks:
            cb(self)

    def add_done_callback(self, cb):
        self._callbacks.append(cb)
        if self._done:
            cb(self)

    def status(self):
        return "Succeeded" if self._done else "InProgress"

    def result(self):
        if self._error:
            raise self._error
        return self._result

    def polling_method(self):
        return _FakePollingMethod(self._percents)


class _FakePollingMethod:
    """Where the client reads AML's percentComplete of the last status poll: each read is the next poll."""

    def __init__(self, percents: list):
        self._percents = percents

    @property
    def _pipeline_response(self):
        value = self._percents.pop(0) if self._percents else None
        response = SimpleNamespace(json=lambda: {"percentComplete": value})
        return SimpleNamespace(http_response=response)


class FakeCompute:
    """``ml_client.compute``: instances by name; ``states[name]`` is a script
    of states that successive reads go through (the last one stays)."""

    def __init__(self, **instances: str):
        self.states = {name: [state] for name, state in instances.items()}
        self.calls: list[tuple[str, str]] = []
        self.raise_on: dict[str, Exception] = {}
        self.poller_options: dict = {}

    def _state(self, name):
        script = self.states[name]
        return script.pop(0) if len(script) > 1 else script[0]

    def _check(self, op, name):
        self.calls.append((op, name))
        if op in self.raise_on:
            raise self.raise_on.pop(op)

    def get(self, name):
        self._check("get", name)
        if name not in self.states:
            raise http_error(404, ResourceNotFoundError)
        return SimpleNamespace(name=name, state=self._state(name), tags={}, size="Standard_DS1_v2")

    def begin_create_or_update(self, entity):
        self._check("create", entity.name)
        self.states[entity.name] = ["Running"]
        return Poller(result=SimpleNamespace(name=entity.name, state="Running", tags=entity.tags),
                      **self.poller_options)

    def _begin(self, op, name, state):
        self._check(op, name)
        if state is None:
            self.states.pop(name, None)
        else:
            self.states[name] = [state]
        return Poller(**self.poller_options)

    def begin_start(self, name):
        return self._begin("start", name, "Running")

    def begin_stop(self, name):
        return self._begin("stop", name, "Stopped")

    def begin_delete(self, name):
        if name not in self.states:
            self.calls.append(("delete", name))
            raise http_error(404, ResourceNotFoundError)
        return self._begin("delete", name, None)


@pytest.fixture
def executor():
    pool = concurrent.futures.ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def client(compute: FakeCompute, executor, **kw) -> ComputeClient:
    kw.setdefault("wait_poll_interval", 0)
    kw.setdefault("progress_interval", 0.01)
    return ComputeClient(SimpleNamespace(compute=compute), executor=executor, **kw)


# ---- one SDK call: off the loop, within its budget, errors mapped ---------


async def test_sdk_calls_run_in_the_pool_not_on_the_loop(executor):
    threads = []
    compute = FakeCompute(**{"ci-alice": "Running"})
    get = compute.get
    compute.get = lambda name: threads.append(threading.get_ident()) or get(name)
    await client(compute, executor).get("ci-alice")
    assert threads and threads[0] != threading.get_ident()


async def test_a_call_over_its_budget_is_service_unavailable(executor):
    released = threading.Event()
    compute = FakeCompute()
    compute.get = lambda name: released.wait(10)  # azure-core sleeping on a Retry-After
    try:
        with pytest.raises(ServiceUnavailable) as err:
            await client(compute, executor, call_timeout=0.05).get("ci-alice")
    finally:
        released.set()
    assert err.value.message == ("Could not get compute instance 'ci-alice': Azure did not answer within 0 s "
                                 "(including retries). Try again in a few minutes.")


async def test_sdk_errors_become_product_errors(executor):
    compute = FakeCompute(**{"ci-alice": "Running"})
    compute.raise_on["get"] = http_error(403)
    with pytest.raises(PermissionDenied) as err:
        await client(compute, executor).get("ci-alice")
    assert isinstance(err.value.__cause__, HttpResponseError)  # the SDK's error stays reachable


async def test_a_missing_instance_is_none(executor):
    assert await client(FakeCompute(), executor).get("ci-nobody") is None


# ---- long operations ----------------------------------------------------


async def test_a_long_operation_reports_rising_progress_to_done(executor):
    compute = FakeCompute()
    pollers = []
    create = compute.begin_create_or_update

    def slow_create(entity):
        compute.poller_options = {"done": False, "percents": [10, 40, 40, 75]}
        poller = create(entity)
        pollers.append(poller)
        threading.Timer(0.1, poller.finish).start()  # azure-core's poller thread ends it
        return poller

    compute.begin_create_or_update = slow_create
    events = []
    info = await client(compute, executor).create(SPEC, events.append)
    assert info.name == "ci-alice" and info.is_running
    assert (events[0].operation, events[0].state, events[0].status, events[0].percent) == (
        "create", "Creating", "InProgress", 0)
    assert events[-1].percent == 100 and events[-1].status == "Succeeded" and events[-1].state is None
    seen = [e.percent for e in events[1:-1]]
    assert seen and seen[:2] == [10, 40]  # AML's own percentComplete, as the polls gave it
    assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)


async def test_a_failing_progress_callback_does_not_fail_the_operation(executor):
    def broken(event):
        raise RuntimeError("a bug in the spawner's progress")

    await client(FakeCompute(**{"ci-alice": "Stopped"}), executor).start("ci-alice", broken)


async def test_an_operation_over_its_budget_times_out(executor):
    compute = FakeCompute(**{"ci-alice": "Running"})
    compute.poller_options = {"done": False}
    with pytest.raises(OperationTimeout) as err:
        await client(compute, executor, operation_timeout=0.1).stop("ci-alice")
    assert "did not finish within 0 minutes. It may still finish" in err.value.message


async def test_a_failed_operation_is_instance_failed(executor):
    compute = FakeCompute(**{"ci-alice": "Stopped"})
    # azure-core raises with the last (successful) status poll, and AML's error as the text
    failure = http_error(200, message="Start failed: capacity is not available.")
    compute.poller_options = {"error": failure}
    with pytest.raises(InstanceFailed, match="capacity is not available"):
        await client(compute, executor).start("ci-alice")


async def test_deleting_what_is_gone_is_fine(executor):
    compute = FakeCompute()
    await client(compute, executor).delete("ci-nobody")
    assert compute.calls == [("delete", "ci-nobody")]


# ---- waiting for somebody else's operation ------------------------------


async def test_wait_for_state_reads_until_a_target(executor):
    compute = FakeCompute(**{"ci-alice": "Stopping"})
    compute.states["ci-alice"] = ["Stopping", "Stopping", "Stopped"]
    events = []
    info = await client(compute, executor).wait_for_state("ci-alice", {"Stopped", "Running"}, events.append)
    assert info.state == "Stopped" and compute.calls == [("get", "ci-alice")] * 3
    assert [(e.operation, e.state) for e in events] == [("wait", "Stopping")] * 2


async def test_wait_for_state_stops_at_a_failed_state(executor):
    compute = FakeCompute(**{"ci-alice": "Creating"})
    compute.states["ci-alice"] = ["Creating", "Unusable"]
    with pytest.raises(InstanceFailed) as err:
        await client(compute, executor).wait_for_state("ci-alice", {"Running"})
    assert err.value.code == "Unusable" and err.value.message == "Compute instance 'ci-alice' is Unusable."


async def test_wait_for_state_of_an_instance_that_goes_away(executor):
    compute = FakeCompute()  # deleted by somebody else before the first read
    with pytest.raises(NotFound, match="no longer exists"):
        await client(compute, executor).wait_for_state("ci-alice", {"Running"})


async def test_wait_for_state_has_a_deadline(executor):
    compute = FakeCompute(**{"ci-alice": "Starting"})
    with pytest.raises(OperationTimeout, match="stayed Starting"):
        await client(compute, executor, wait_poll_interval=0.01).wait_for_state("ci-alice", {"Running"}, timeout=0.05)


# ---- ensure_running, from every state -----------------------------------


def mutations(compute: FakeCompute) -> list[str]:
    return [op for op, _ in compute.calls if op != "get"]


@pytest.mark.parametrize("states,how,done", [
    ([], "created", ["create"]),
    (["Running"], "reused", []),
    (["Stopped", "Running"], "started", ["start"]),
    (["Stopping", "Stopping", "Stopped", "Running"], "started", ["start"]),
    (["Stopping", "Running"], "waited", []),
    (["Starting", "Starting", "Running"], "waited", []),
])
async def test_ensure_running(executor, states, how, done):
    compute = FakeCompute()
    if states:
        compute.states["ci-alice"] = states
    info, what = await client(compute, executor).ensure_running(SPEC)
    assert (info.state, what, mutations(compute)) == ("Running", how, done)


async def test_ensure_running_after_a_delete_creates_anew(executor):
    compute = FakeCompute(**{"ci-alice": "Deleting"})
    get = compute.get

    def get_then_gone(name):
        found = get(name)
        compute.states.pop(name, None)  # the delete finishes
        return found

    compute.get = get_then_gone
    info, what = await client(compute, executor).ensure_running(SPEC)
    assert what == "created" and mutations(compute) == ["create"]


async def test_ensure_running_uses_what_the_caller_read(executor):
    compute = FakeCompute()
    info, what = await client(compute, executor).ensure_running(SPEC, current=None)
    assert what == "created" and compute.calls == [("create", "ci-alice")]


async def test_ensure_running_when_somebody_created_it_meanwhile(executor):
    compute = FakeCompute()
    compute.raise_on["create"] = http_error(409, ResourceExistsError)
    create = compute.begin_create_or_update

    def conflict(entity):
        compute.states[entity.name] = ["Running"]  # the earlier attempt's instance
        return create(entity)

    compute.begin_create_or_update = conflict
    info, what = await client(compute, executor).ensure_running(SPEC, current=None)
    assert what == "reused" and info.is_running


async def test_ensure_running_busy_and_still_missing_raises(executor):
    compute = FakeCompute()
    compute.raise_on["create"] = http_error(409, ResourceExistsError)
    with pytest.raises(Busy):
        await client(compute, executor).ensure_running(SPEC)


async def test_ensure_running_touches_nothing_it_may_not_accept(executor):
    compute = FakeCompute(**{"ci-alice": "Stopped"})
    with pytest.raises(ForeignInstance):
        await client(compute, executor).ensure_running(SPEC, accept=lambda info: False)
    assert mutations(compute) == []


async def test_ensure_running_leaves_a_failed_instance_to_the_caller(executor):
    compute = FakeCompute(**{"ci-alice": "CreateFailed"})
    with pytest.raises(InstanceFailed) as err:
        await client(compute, executor).ensure_running(SPEC)
    assert err.value.code == "CreateFailed" and mutations(compute) == []


# ---- the SDK client's budgets (compute/sdk.py) ----------------------------


async def test_every_request_has_timeouts_and_the_whole_retry_budget():
    ml = make_ml_client(StaticTokenCredential("t"), "sub", "rg", "ws", arm_endpoint="https://arm.test/",
                        retry_total=7, connection_timeout=3, read_timeout=11, ca_bundle="/ca.pem")
    operations = ml.compute._operation  # one of the SDK's generated clients; all share these options
    retry = operations._config.retry_policy
    # 429 and 5xx count as status retries: azure-core's default of 3 would end them before retry_total
    assert (retry.total_retries, retry.status_retries) == (7, 7)
    connection = operations._client._pipeline._transport.connection_config
    assert (connection.timeout, connection.read_timeout, connection.verify) == (3, 11, "/ca.pem")
    assert operations._config.base_url == "https://arm.test"


@pytest.mark.parametrize("before", [None, "https://somebody-elses.test"])
async def test_the_endpoint_variable_is_restored(monkeypatch, before):
    if before is None:
        monkeypatch.delenv(_MFE_ENV, raising=False)
    else:
        monkeypatch.setenv(_MFE_ENV, before)
    make_ml_client(StaticTokenCredential("t"), "sub", "rg", "ws", arm_endpoint="https://arm.test")
    assert os.environ.get(_MFE_ENV) == before


async def test_a_named_cloud_is_its_own_arm(monkeypatch):
    monkeypatch.delenv(_MFE_ENV, raising=False)
    ml = make_ml_client(StaticTokenCredential("t"), "sub", "rg", "ws", cloud_name="AzureUSGovernment")
    assert ml.compute._operation._config.base_url.rstrip("/") == "https://management.usgovcloudapi.net"
