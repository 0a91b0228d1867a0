"""What every AMLSpawner of one hub process shares: the fleet.

- one lock per instance (start, stop, the reconciler and background settling
  never act on one instance at once; a lock nobody holds or waits for is
  dropped);
- the thread pool for the blocking Azure SDK, and the compute clients, one
  per workspace and endpoint (``clients``);
- the reconcilers, one per workspace (see ``reconciler``);
- redirect mode's endpoint (``redirector``), and the tunnel service's client;
- *settling*: making an instance that no server uses any more stop (or go,
  per ``stop_action``), retried in the background until AML says it is done.
  A stop that failed, a server that ended on its own, a start that failed
  halfway and the reconciler's orphans all end here, so nothing is left
  running up a bill because one call failed.

One :class:`Fleet` per hub process (:func:`shared`), like kubespawner's
shared reflectors. It lives as long as the process: made by the first
spawner, it is never torn down (the hub's exit ends its tasks and threads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import weakref
from typing import Awaitable, Callable

from . import metrics, ownership
from .compute import ComputeClient, InstanceFailed, NotFound, shared_executor
from .reconciler import Action, Reconciler
from .redirector import Redirector
from .tunnel_client import TunnelClient

log = logging.getLogger("aml_jupyterhub.fleet")

InstanceKey = tuple  # ((subscription, resource group, workspace), lower-case instance name)


def instance_key(workspace_key: tuple, name: str) -> InstanceKey:
    return (tuple(k.lower() for k in workspace_key), name.lower())


async def settle_once(client: ComputeClient, name: str, owner: ownership.Owner, action: str) -> str:
    """Bring instance ``name`` to rest once: ``action`` "stop" leaves it
    Stopped, "delete" removes it. Returns what was found or done; raises
    ComputeError when AML did not let it finish (the caller retries)."""
    info = await client.get(name)
    if info is None:
        return "gone"
    if ownership.verdict(info.tags, owner, allow_legacy=True) == ownership.FOREIGN:
        # never: but a name can be reused by somebody else between two reads
        log.error("not touching compute instance %s: its tags do not name %s", name, owner.describe())
        return "foreign"
    if action == "delete":
        await client.delete(name)
        return "deleted"
    try:
        if info.is_transient:
            info = await client.wait_for_state(name, {"Running", "Stopped"})
    except InstanceFailed as e:
        return f"failed ({e.code})"  # a failed instance runs nothing
    except NotFound:
        return "gone"
    if info.is_running:
        await client.stop(name)
        return "stopped"
    return info.state or "unknown"


class Fleet:
    def __init__(self):
        self.spawners: "weakref.WeakSet" = weakref.WeakSet()
        self.clients: dict = {}
        self.operation_times: dict = {}  # file -> timings.OperationTimes, shared by every client
        self.clients_lock = asyncio.Lock()
        self._locks: dict[InstanceKey, list] = {}  # key -> [lock, holders and waiters]
        self._reconcilers: dict[tuple, Reconciler] = {}
        self._settling: dict[InstanceKey, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self.notices: dict[tuple[str, str], str] = {}  # (user, server) -> why the hub stopped it, until it starts again
        self.sizes: dict = {}  # (workspace..., endpoint) -> (time, {size name: VmSize})
        self.redirector = Redirector()  # redirect mode's endpoint, one per hub process
        self._tunnel_clients: dict[tuple, TunnelClient] = {}

    def prices(self) -> dict[str, float]:
        """Lower-case size name -> price per hour, from every size list the hub holds (priced by ``prices``)."""
        out: dict[str, float] = {}
        for _, sizes in list(self.sizes.values()):
            for key, size in sizes.items():
                if size.price_per_hour is not None:
                    out.setdefault(key, size.price_per_hour)
        return out

    def vcpus(self, vm_size: str) -> int | None:
        """A size's vCPUs, from any size list the hub holds (a size is the same in every region)."""
        for _, sizes in list(self.sizes.values()):
            size = sizes.get((vm_size or "").lower())
            if size is not None and size.vcpus:
                return size.vcpus
        return None

    def tunnel_client(self, url: str, token: str) -> TunnelClient:
        """The client of the tunnel service at ``url`` (one per service, shared by every server)."""
        key = (url, token)
        if key not in self._tunnel_clients:
            self._tunnel_clients[key] = TunnelClient(url, token)
        return self._tunnel_clients[key]

    def executor(self, threads: int) -> concurrent.futures.ThreadPoolExecutor:
        """The process's pool for blocking SDK calls (``compute.shared_executor``), made with the
        hub's executor_threads (one setting for the whole hub: every spawner asks for the same size)."""
        pool = shared_executor(threads)
        if pool._max_workers != threads:
            log.warning("executor_threads=%s ignored: the hub's SDK pool already has %s threads",
                        threads, pool._max_workers)
        return pool

    def run_in_background(self, coro) -> asyncio.Task:
        """A task the fleet keeps (asyncio holds only weak references to tasks)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ---- locks -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(self, key: InstanceKey):
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._locks.get(key) is entry:
                del self._locks[key]

    # ---- who uses what ---------------------------------------------------

    def in_use(self, workspace_key: tuple) -> set[str]:
        """Lower-case names of the workspace's instances that an active server
        uses, or that are being settled."""
        ws = tuple(k.lower() for k in workspace_key)
        names = {key[1] for key in self._settling if key[0] == ws}
        for spawner in list(self.spawners):
            key = spawner.instance_key
            if key and key[0] == ws and spawner.active:
                names.add(key[1])
        return names

    # ---- reconcilers ------------------------------------------------------

    def reconcilers(self) -> list[Reconciler]:
        """Every workspace's reconciler started so far."""
        return list(self._reconcilers.values())

    def reconcilers_by_workspace(self) -> list[tuple[tuple, Reconciler]]:
        """(lower-case workspace key, its reconciler) of every one started so far."""
        return list(self._reconcilers.items())

    def reconciler(self, workspace_key: tuple, make: Callable[[], Reconciler]) -> Reconciler:
        ws = tuple(k.lower() for k in workspace_key)
        rec = self._reconcilers.get(ws)
        if rec is None:
            rec = self._reconcilers[ws] = make()
            rec.start()
        return rec

    # ---- settling -----------------------------------------------------------

    def busy_keys(self) -> list[InstanceKey]:
        """The instances an operation of the hub holds the lock of now (a start, a stop)."""
        return list(self._locks)

    def settling_keys(self) -> list[InstanceKey]:
        """The instances being brought to rest now."""
        return [k for k, task in list(self._settling.items()) if not task.done()]

    def settling(self, key: InstanceKey) -> bool:
        task = self._settling.get(key)
        return task is not None and not task.done()

    def settle(
        self,
        key: InstanceKey,
        client_for: Callable[[], Awaitable[ComputeClient]],
        name: str,
        owner: ownership.Owner,
        action: str,
        why: str,
        *,
        retry_delay: float = 5,
        max_delay: float = 60,
        on_deleted: Callable[[], None] | None = None,
    ) -> asyncio.Task:
        """Settle the instance in the background until AML says it is done
        (one task per instance; a second call while one runs joins it). The
        task is registered at once, so the reconciler and a new start see it;
        ``client_for`` makes (or finds) the workspace's client inside it."""
        if self.settling(key):
            return self._settling[key]
        task = asyncio.ensure_future(
            self._settle(key, client_for, name, owner, action, why, retry_delay, max_delay, on_deleted))
        self._settling[key] = task
        task.add_done_callback(lambda t, k=key: self._settling.get(k) is t and self._settling.pop(k))
        return task

    def cancel_settling(self, key: InstanceKey) -> bool:
        """A server is about to use the instance again. True if a settling
        was under way (the instance may have changed since it was read)."""
        task = self._settling.pop(key, None)
        if task is None or task.done():
            return False
        task.cancel()
        log.info("settling of compute instance %s called off: a server uses it again", key[1])
        return True

    async def _settle(self, key, client_for, name, owner, action, why, retry_delay, max_delay, on_deleted) -> str:
        delay = retry_delay
        attempt = 0
        log.info("%s compute instance %s of %s: %s", "deleting" if action == "delete" else "stopping",
                 name, owner.describe(), why)
        while True:
            attempt += 1
            try:
                client = await client_for()
                async with self.lock(key):
                    outcome = await settle_once(client, name, owner, action)
            except Exception as e:  # AML refused or did not answer, or no client could be made yet
                log.warning("%s of compute instance %s of %s is pending (attempt %d: %s); trying again in %g s",
                            action, name, owner.describe(), attempt, getattr(e, "message", e), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
                continue
            if outcome in ("deleted", "gone") and on_deleted is not None:
                on_deleted()
            log.info("compute instance %s of %s: %s (after %d attempt%s)", name, owner.describe(), outcome,
                     attempt, "" if attempt == 1 else "s")
            return outcome

    def act(self, client: ComputeClient, workspace_key: tuple, action: Action, on_deleted=None, retry_delay=5) -> None:
        """The reconciler's hand-over: settle an orphan unless a server took it meanwhile."""
        key = instance_key(workspace_key, action.name)
        if key[1] in self.in_use(workspace_key):
            return
        log.warning("reconciler: %s compute instance %s of %s in workspace %s: %s",
                    "deleting" if action.kind == "delete" else "stopping", action.name, action.owner.describe(),
                    workspace_key[2], action.why)
        async def given() -> ComputeClient:
            return client

        self.settle(key, given, action.name, action.owner, action.kind, f"reconciler: {action.why}",
                    on_deleted=on_deleted, retry_delay=retry_delay)


_shared: Fleet | None = None


def route_package_logs(to: logging.Logger) -> None:
    """Send what this package's modules log (``aml_jupyterhub.*``: the fleet,
    the reconciler, SSH, the compute client) to the hub's own log handlers,
    with the hub's level. Without it JupyterHub shows none of their INFO lines
    and their warnings only bare, through logging's last resort."""
    package = logging.getLogger("aml_jupyterhub")
    if package.handlers or not to.handlers:
        return
    for handler in to.handlers:
        package.addHandler(handler)
    package.setLevel(to.getEffectiveLevel())
    package.propagate = False


def shared(log: logging.Logger | None = None) -> Fleet:
    """The fleet of this hub process (``log``: the hub's, to route the package's logs to)."""
    global _shared
    if _shared is None:
        _shared = Fleet()
        metrics.register(_shared)  # the hub's /hub/metrics reads what runs from it
    if log is not None:
        route_package_logs(log)
    return _shared
