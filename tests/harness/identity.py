"""The emulated Azure AD's packaged test identity (tenant, app, people,
groups), and a clock to hand its AzureAD."""

from __future__ import annotations

from aml_emulator.aad import IdentityConfig

IDENTITY = IdentityConfig.load(None)
TENANT_ID = IDENTITY.tenant_id
APP = IDENTITY.apps[0]  # the local hub's app registration
USERS = {u.username: u for u in IDENTITY.users}
GROUPS = {g.display_name: g.id for g in IDENTITY.groups}


class Clock:
    """Time as the test sets it (``now``), for ``AzureAD(..., clock=Clock())``."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
