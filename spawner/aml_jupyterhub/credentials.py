"""Which credential the hub's ARM calls use: chosen by name, never guessed.

``default`` is azure-identity's DefaultAzureCredential (environment, workload
or managed identity, az login); ``managed-identity`` and
``service-principal`` pin one of those; ``static-token`` sends one fixed
bearer token and exists for the local emulator only, so it is refused unless
an ARM endpoint other than the cloud's is configured: a test token never
reaches Azure.
"""

from __future__ import annotations

from urllib.parse import urlparse

from .clouds import Cloud
from .compute.sdk import StaticTokenCredential

CREDENTIAL_TYPES = ("default", "managed-identity", "service-principal", "static-token")


def credential_problem(kind: str, *, arm_endpoint: str, static_token: str) -> str | None:
    """What is wrong with this choice, in a sentence an admin can act on; None if nothing."""
    if kind not in CREDENTIAL_TYPES:
        return f"credential type {kind!r} is not one of {', '.join(CREDENTIAL_TYPES)}"
    if kind == "static-token":
        if not arm_endpoint:
            return ("a static token is for the local emulator only, and no ARM endpoint of the emulator is set: "
                    "use the credential type default, managed-identity or service-principal for Azure")
        if not static_token:
            return "the credential type static-token needs the token (AML_STATIC_TOKEN)"
    return None


def make_credential(kind: str, cloud: Cloud, *, static_token: str = "", tenant_id: str = "", client_id: str = "",
                    client_secret: str = ""):
    """The TokenCredential for ``kind`` (see :data:`CREDENTIAL_TYPES`); makes no network call."""
    authority = urlparse(cloud.login).netloc
    if kind == "static-token":
        return StaticTokenCredential(static_token)
    if kind == "service-principal":
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(tenant_id, client_id, client_secret, authority=authority)
    if kind == "managed-identity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id or None)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(authority=authority)
