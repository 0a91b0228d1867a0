"""The compute client of a workspace, built once per hub from the spawner's settings.

Building azure-ai-ml's client imports the SDK and takes a second or two, so
it happens in the shared thread pool, once per (workspace, endpoint,
credential): the fleet keeps the clients for the life of the hub process.
"""

from __future__ import annotations

import asyncio

from .clouds import cloud
from .compute import ComputeClient, make_ml_client
from .metrics import count_arm_response
from .credentials import credential_problem, make_credential
from .errors import spawn_error
from .timings import OperationTimes


def credential_for(settings, log):
    """The TokenCredential the settings ask for (``credential`` object first)."""
    if settings.credential is not None:
        return settings.credential
    kind, token = settings.credential_type, settings.static_token
    if settings.emulator_token and not token:
        log.warning("AMLSpawner.emulator_token is deprecated: set credential_type = 'static-token' and "
                    "static_token instead")
        kind, token = "static-token", settings.emulator_token
    problem = credential_problem(kind, arm_endpoint=settings.arm_endpoint, static_token=token)
    if problem:
        raise spawn_error(f"The hub's Azure credential is misconfigured: {problem}. An admin must fix it.",
                          reason="config", status_code=500)
    return make_credential(kind, cloud(settings.azure_cloud), static_token=token)


async def compute_client(fleet, settings, project, log) -> ComputeClient:
    """The fleet's client for ``project``'s workspace, made on first use."""
    # the credential object itself is in the key (held, so never confused with a later one)
    key = (*project.key, settings.azure_cloud, settings.arm_endpoint, settings.ca_bundle, settings.credential,
           settings.credential_type, settings.static_token or settings.emulator_token)
    async with fleet.clients_lock:
        client = fleet.clients.get(key)
        if client is None:
            if not all(project.key):
                raise spawn_error(
                    "The hub has no Azure ML workspace configured (subscription, resource group, workspace). "
                    "An admin must set them.",
                    reason="config",
                    status_code=500,
                )
            executor = fleet.executor(settings.executor_threads)
            credential = credential_for(settings, log)
            ml = await asyncio.get_running_loop().run_in_executor(
                executor,
                lambda: make_ml_client(
                    credential,
                    *project.key,
                    cloud_name=cloud(settings.azure_cloud).sdk_name,
                    arm_endpoint=settings.arm_endpoint or None,
                    ca_bundle=settings.ca_bundle or None,
                    retry_total=settings.retry_total,
                    raw_response_hook=count_arm_response,  # every answer, retries included: /hub/metrics
                ),
            )
            client = ComputeClient(
                ml,
                executor=executor,
                call_timeout=settings.call_timeout,
                operation_timeout=settings.operation_timeout,
                wait_poll_interval=settings.wait_interval,
                times=operation_times(fleet, settings),
            )
            fleet.clients[key] = client
    return client


def operation_times(fleet, settings) -> OperationTimes:
    """One history per file for the whole hub (every workspace's client adds to it)."""
    key = (settings.operation_times_file, tuple(sorted(settings.typical_operation_seconds.items())))
    times = fleet.operation_times.get(key)
    if times is None:
        times = fleet.operation_times[key] = OperationTimes(settings.operation_times_file or None,
                                                            settings.typical_operation_seconds)
    return times
