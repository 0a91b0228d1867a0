"""The Azure clouds the hub can run against, and their endpoints.

Chosen by name (``AZURE_CLOUD`` / ``AMLSpawner.azure_cloud``), never guessed
from a URL: a sovereign cloud gets its own ARM, login and token issuer, and
no test credential is ever sent to one of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str  # the setting's value
    sdk_name: str  # azure-ai-ml's name for it (MLClient's cloud=)
    arm: str  # Azure Resource Manager
    login: str  # Azure AD's authority host (oauthenticator calls it graph_url)
    issuer_host: str  # of Azure AD v1 id_tokens: https://<issuer_host>/<tenant>/

    def issuer(self, tenant_id: str) -> str:
        return f"https://{self.issuer_host}/{tenant_id}/"


CLOUDS = {
    c.name: c
    for c in (
        Cloud("public", "AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com",
              "sts.windows.net"),
        Cloud("usgov", "AzureUSGovernment", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us",
              "sts.usgovcloudapi.net"),
        Cloud("china", "AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
              "sts.chinacloudapi.cn"),
    )
}


def cloud(name: str) -> Cloud:
    try:
        return CLOUDS[name]
    except KeyError:
        raise ValueError(f"unknown Azure cloud {name!r}: use one of {', '.join(CLOUDS)}") from None
