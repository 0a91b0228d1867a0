"""The async compute client: the only code that talks to AML.

azure-ai-ml is synchronous. Every SDK call runs in one bounded thread pool
(shared by all clients in the process) and is awaited with a timeout, so the
hub's event loop never blocks. Retries of throttling (429 + Retry-After) and
5xx happen inside azure-core's retry policy, bounded by ``retry_total``; the
call's timeout is the overall budget. Long operations are watched through the
SDK's own poller, which waits the interval the service asks for
(``Retry-After``) or, as Azure ML asks none, what ``polling.PollSchedule``
says for an operation expected to take as long as this hub's recent ones
(``timings``); we are woken when it finishes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Awaitable, Callable

from .errors import (
    Busy,
    ComputeError,
    ForeignInstance,
    InstanceFailed,
    NotFound,
    OperationTimeout,
    ServiceUnavailable,
    map_sdk_error,
)
from ..timings import OperationTimes
from .models import FAILED_STATES, InstanceInfo, InstanceSpec, Progress, Usage, VmSize
from .polling import PollSchedule, follow
from .sdk import begin_resize

log = logging.getLogger("aml_jupyterhub.compute")

ProgressCallback = Callable[[Progress], Awaitable[None] | None]

_shared_executor: concurrent.futures.ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def shared_executor(max_workers: int = 16) -> concurrent.futures.ThreadPoolExecutor:
    """The process-wide pool for blocking SDK calls (created on first use)."""
    global _shared_executor
    with _shared_lock:
        if _shared_executor is None:
            _shared_executor = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="aml-sdk")
        return _shared_executor


_UNREAD = object()  # "the caller did not read the instance"

_OP_STATE = {"create": "Creating", "start": "Starting", "stop": "Stopping", "restart": "Restarting", "delete": "Deleting",
             "resize": "Resizing"}


class ComputeClient:
    """Async operations on the compute instances of one workspace.

    ``ml_client`` is an azure-ai-ml MLClient (see :func:`sdk.make_ml_client`);
    tests and the spawner inject it, so nothing here knows about the emulator.
    """

    def __init__(
        self,
        ml_client,
        *,
        executor: concurrent.futures.Executor | None = None,
        call_timeout: float = 120,
        operation_timeout: float = 1800,
        wait_poll_interval: float = 5,
        progress_interval: float = 2,
        times: OperationTimes | None = None,
    ):
        self.ml = ml_client
        self.times = times or OperationTimes()
        self.executor = executor or shared_executor()
        self.call_timeout = call_timeout
        self.operation_timeout = operation_timeout
        self.wait_poll_interval = wait_poll_interval
        self.progress_interval = progress_interval

    # ---- plumbing ----------------------------------------------------

    async def _call(self, action: str, name: str | None, fn, *args, **kwargs):
        """Run one blocking SDK call in the pool, with the call budget."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        try:
            return await asyncio.wait_for(future, self.call_timeout)
        except asyncio.TimeoutError:
            raise ServiceUnavailable(
                f"Could not {action} compute instance '{name}': Azure did not answer within "
                f"{self.call_timeout:.0f} s (including retries). Try again in a few minutes."
                if name else f"Could not {action}: Azure did not answer within {self.call_timeout:.0f} s."
            ) from None
        except ComputeError:
            raise
        except Exception as exc:
            raise map_sdk_error(exc, action=action, name=name) from exc

    async def _emit(self, cb: ProgressCallback | None, event: Progress) -> None:
        if cb is None:
            return
        try:
            result = cb(event)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("progress callback failed")

    async def _run_lro(self, action: str, name: str, begin, *args, on_progress: ProgressCallback | None = None,
                       size: str | None = None):
        """Start a long operation and wait for the SDK's poller to finish it.

        The poller reads the status on a schedule made for an operation as
        long as this hub's recent ones of this kind and size; a success is
        added to that history."""
        started = time.monotonic()
        expected, basis = self.times.expected(action, size)

        def begin_and_schedule():
            poller = begin(*args)
            follow(poller, PollSchedule(expected), started)  # before its first sleep ends
            return poller

        poller = await self._call(action, name, begin_and_schedule)
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def _on_done(_polling_method):
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        def observed(status, percent, elapsed) -> Progress:
            return Progress(action, name, _OP_STATE.get(action), status, percent, elapsed,
                            expected=expected, basis=basis)

        poller.add_done_callback(_on_done)
        await self._emit(on_progress, observed(poller.status(), 0, 0.0))
        deadline = started + self.operation_timeout
        while not done.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeout(
                    f"Could not {action} compute instance '{name}': it did not finish within "
                    f"{self.operation_timeout / 60:.0f} minutes. It may still finish; check it in Azure ML studio."
                )
            try:
                await asyncio.wait_for(asyncio.shield(done), min(self.progress_interval, remaining))
            except asyncio.TimeoutError:
                await self._emit(on_progress, observed(poller.status(), _percent(poller), time.monotonic() - started))
        result = await self._call(action, name, poller.result)
        elapsed = time.monotonic() - started
        await loop.run_in_executor(self.executor, self.times.record, action, size, elapsed)  # a file write
        await self._emit(on_progress, dataclasses.replace(observed(poller.status(), 100, elapsed), state=None))
        return result

    # ---- reads -------------------------------------------------------

    async def get(self, name: str) -> InstanceInfo | None:
        """The instance, or None if it does not exist."""
        try:
            ci = await self._call("get", name, self.ml.compute.get, name)
        except NotFound:
            return None
        return InstanceInfo.from_entity(ci)

    async def list(self) -> list[InstanceInfo]:
        def _list():
            return list(self.ml.compute.list(compute_type="ComputeInstance"))

        return [InstanceInfo.from_entity(ci) for ci in await self._call("list compute instances", None, _list)]

    async def list_sizes(self, location: str | None = None) -> list[VmSize]:
        """The sizes a compute instance can have in ``location`` (default: the
        workspace's, which the SDK then reads first)."""
        def _sizes():
            return list(self.ml.compute.list_sizes(location=location, compute_type="ComputeInstance"))

        return [VmSize.from_entity(s) for s in await self._call("list VM sizes", None, _sizes)]

    async def location(self) -> str | None:
        """The workspace's region (read once: a workspace never moves)."""
        if getattr(self, "_location", None) is None:
            def _get():
                return self.ml.workspaces.get(self.ml.workspace_name).location

            self._location = (await self._call("read the workspace", None, _get) or "").lower() or None
        return self._location

    async def usage(self) -> list[Usage]:
        def _usage():
            return list(self.ml.compute.list_usage())

        return [Usage.from_entity(u) for u in await self._call("read quota usage", None, _usage)]

    # ---- long operations ---------------------------------------------

    async def create(self, spec: InstanceSpec, on_progress: ProgressCallback | None = None) -> InstanceInfo:
        """Create the instance and wait until it runs (or fails)."""
        ci = await self._run_lro("create", spec.name, self.ml.compute.begin_create_or_update, spec.to_entity(),
                                 on_progress=on_progress, size=spec.vm_size)
        return InstanceInfo.from_entity(ci)

    async def start(self, name: str, on_progress: ProgressCallback | None = None, size: str | None = None) -> None:
        await self._run_lro("start", name, self.ml.compute.begin_start, name, on_progress=on_progress, size=size)

    async def stop(self, name: str, on_progress: ProgressCallback | None = None, size: str | None = None) -> None:
        await self._run_lro("stop", name, self.ml.compute.begin_stop, name, on_progress=on_progress, size=size)

    async def resize(self, name: str, vm_size: str, on_progress: ProgressCallback | None = None) -> None:
        """Give a Stopped instance another size; its disk is kept. AML refuses it while it runs."""
        await self._run_lro("resize", name, begin_resize, self.ml, name, vm_size, on_progress=on_progress,
                            size=vm_size)

    async def restart(self, name: str, on_progress: ProgressCallback | None = None) -> None:
        await self._run_lro("restart", name, self.ml.compute.begin_restart, name, on_progress=on_progress)

    async def delete(self, name: str, on_progress: ProgressCallback | None = None) -> None:
        """Delete the instance and its disk; a missing instance is not an error."""
        try:
            await self._run_lro("delete", name, self.ml.compute.begin_delete, name, on_progress=on_progress)
        except NotFound:
            pass

    async def wait_for_state(
        self,
        name: str,
        targets: set[str],
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> InstanceInfo:
        """Read the instance until its state is one of ``targets``.

        For operations we did not start (someone else's, or ours from before a
        hub restart). Raises InstanceFailed on a failed state, NotFound if it
        disappears.
        """
        started = time.monotonic()
        deadline = started + (timeout or self.operation_timeout)
        while True:
            info = await self.get(name)
            if info is None:
                raise NotFound(f"Compute instance '{name}' no longer exists.")
            if info.state in targets:
                return info
            if info.state in FAILED_STATES:
                raise InstanceFailed(
                    f"Compute instance '{name}' is {info.state}" + (f": {info.error}" if info.error else "."),
                    code=info.state,
                )
            await self._emit(on_progress, Progress("wait", name, info.state, None, None, time.monotonic() - started))
            if time.monotonic() >= deadline:
                raise OperationTimeout(
                    f"Compute instance '{name}' stayed {info.state} for {(time.monotonic() - started) / 60:.0f} "
                    "minutes. Check it in Azure ML studio."
                )
            await asyncio.sleep(self.wait_poll_interval)

    async def ensure_running(
        self,
        spec: InstanceSpec,
        on_progress: ProgressCallback | None = None,
        current=_UNREAD,
        accept: Callable[[InstanceInfo], bool] | None = None,
    ) -> tuple[InstanceInfo, str]:
        """Make the instance run, whatever state it is in; return it and what
        was done ("created", "started", "reused", "waited").

        ``current`` is what the caller just read (None: it does not exist), to
        save a request; leave it out to read it here.

        A failed instance is not repaired here: the caller decides whether to
        delete it (it is a user's machine). ``accept`` says whether an instance
        found under the name may be used; one it refuses raises ForeignInstance
        before anything is done to it.
        """
        info = await self.get(spec.name) if current is _UNREAD else current
        if info is None:
            try:
                return await self.create(spec, on_progress), "created"
            except Busy:
                # Someone (an earlier attempt) created it meanwhile: fall through to waiting.
                info = await self.get(spec.name)
                if info is None:
                    raise
        if accept is not None and not accept(info):
            raise ForeignInstance(f"Compute instance '{spec.name}' exists and is not the one asked for.")
        if info.is_running:
            return info, "reused"
        if info.state in ("Stopping", "Resizing"):  # a resize ends Stopped
            info = await self.wait_for_state(spec.name, {"Stopped", "Running"}, on_progress)
            if info.is_running:
                return info, "waited"
        if info.is_stopped:
            await self.start(spec.name, on_progress, size=info.vm_size or spec.vm_size)
            info = await self.get(spec.name)
            if info is None:
                raise NotFound(f"Compute instance '{spec.name}' disappeared while starting.")
            if not info.is_running:
                info = await self.wait_for_state(spec.name, {"Running"}, on_progress)
            return info, "started"
        if info.is_failed:
            raise InstanceFailed(
                f"Compute instance '{spec.name}' is {info.state}" + (f": {info.error}" if info.error else "."),
                code=info.state,
            )
        if info.state == "Deleting":
            await self.wait_for_gone(spec.name, on_progress)
            return await self.create(spec, on_progress), "created"
        return await self.wait_for_state(spec.name, {"Running"}, on_progress), "waited"

    async def wait_for_gone(self, name: str, on_progress: ProgressCallback | None = None) -> None:
        started = time.monotonic()
        while True:
            info = await self.get(name)
            if info is None:
                return
            await self._emit(on_progress, Progress("wait", name, info.state, None, None, time.monotonic() - started))
            if time.monotonic() - started > self.operation_timeout:
                raise OperationTimeout(f"Compute instance '{name}' was still {info.state} after waiting.")
            await asyncio.sleep(self.wait_poll_interval)


def _percent(poller) -> int | None:
    """percentComplete from the last status poll, when the service sent one.

    Reads azure-core's polling method; a shape we do not recognise gives None.
    """
    try:
        response = poller.polling_method()._pipeline_response.http_response
        value = response.json().get("percentComplete")
        return int(value) if value is not None else None
    except Exception:
        return None
