"""Building azure-ai-ml's MLClient for an Azure cloud or another ARM endpoint.

Constructing an MLClient makes no HTTP call. For a named Azure cloud the SDK
gets its name (``cloud=``). For any other endpoint (the local emulator) it
takes the base URL from ``AZUREML_DEV_URL_MFE`` at construction time only, so
we set that variable for the duration of the constructor, under a lock, and
restore it: nothing global outlives the call. Which one is explicit, never
guessed from the URL.
"""

from __future__ import annotations

import os
import threading
import time

from azure.core.credentials import AccessToken

_MFE_ENV = "AZUREML_DEV_URL_MFE"
_construct_lock = threading.Lock()


class StaticTokenCredential:
    """A TokenCredential that always hands out one bearer token.

    For the emulator (which accepts its configured static token); never for Azure.
    """

    def __init__(self, token: str, lifetime_seconds: int = 3600):
        self._token = token
        self._lifetime = lifetime_seconds

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + self._lifetime)

    def get_token_info(self, *scopes, options=None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + self._lifetime)

    def close(self) -> None:
        pass


def make_ml_client(
    credential,
    subscription_id: str,
    resource_group: str,
    workspace_name: str,
    *,
    cloud_name: str = "AzureCloud",
    arm_endpoint: str | None = None,
    ca_bundle: str | None = None,
    polling_interval: float = 2,  # the poll schedule (compute.polling) sets each delay; this is its first
    retry_total: int = 4,
    retry_backoff_factor: float = 0.8,
    retry_backoff_max: float = 30,
    connection_timeout: float = 10,
    read_timeout: float = 60,
    **kwargs,
):
    """An MLClient whose every HTTP call has a connect and read timeout and a
    bounded retry policy (429 with Retry-After, and 5xx, are retried by
    azure-core inside ``retry_total``). ``arm_endpoint`` empty: the ARM of
    the cloud ``cloud_name`` (azure-ai-ml's name, e.g. AzureUSGovernment)."""
    from azure.ai.ml import MLClient

    options = dict(
        enable_telemetry=False,
        show_progress=False,
        polling_interval=polling_interval,
        retry_total=retry_total,
        retry_status=retry_total,  # azure-core's default of 3 would cut retry_total short for 429/5xx
        retry_backoff_factor=retry_backoff_factor,
        retry_backoff_max=retry_backoff_max,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
        **kwargs,
    )
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    if not arm_endpoint:
        return MLClient(credential, subscription_id, resource_group, workspace_name, cloud=cloud_name, **options)
    with _construct_lock:
        previous = os.environ.get(_MFE_ENV)
        os.environ[_MFE_ENV] = arm_endpoint.rstrip("/")
        try:
            return MLClient(credential, subscription_id, resource_group, workspace_name, **options)
        finally:
            if previous is None:
                os.environ.pop(_MFE_ENV, None)
            else:
                os.environ[_MFE_ENV] = previous


def begin_resize(ml, name: str, vm_size: str):
    """Resize a stopped compute instance: ``POST .../computes/{name}/resize``
    with ``{"targetVMSize": vm_size}``, an ARM long operation.

    azure-ai-ml (1.35) wraps no resize, so this sends the request its own
    ``begin_start`` sends, through the same client (its pipeline: credential,
    retries, timeouts, api-version) with that body, and polls it with
    azure-core's ARM poller, as ``begin_start`` does. It reads the SDK's
    private attributes: the pinned SDK version keeps them where they are.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        map_error,
    )
    from azure.core.polling import LROPoller
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    ops = ml.compute
    generated = ops._operation
    config = generated._config
    path = (f"/subscriptions/{config.subscription_id}/resourceGroups/{ops._operation_scope.resource_group_name}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{ops._workspace_name}/computes/{name}/resize")
    request = HttpRequest("POST", path, params={"api-version": config.api_version}, json={"targetVMSize": vm_size})
    request.url = generated._client.format_url(request.url, endpoint=config.base_url)
    pipeline_response = generated._client._pipeline.run(request)
    response = pipeline_response.http_response
    if response.status_code != 202:
        response.read()
        map_error(status_code=response.status_code, response=response,
                  error_map={401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError})
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    polling = ARMPolling(config.polling_interval, path_format_arguments={"endpoint": config.base_url})
    return LROPoller(generated._client, pipeline_response, lambda _response: None, polling)
