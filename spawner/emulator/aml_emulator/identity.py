"""Who the emulated Azure AD knows: its tenant, users, groups and app registrations.

:class:`IdentityConfig` reads them from an identity file (the packaged
``data/identity.json`` by default) and refuses a file Azure AD could not
hold: ids that are not GUIDs, unknown groups, duplicate users or apps,
redirect URIs that are not absolute http(s) URLs. :class:`Directory` is the
tenant at run time: the lookups the endpoints make, and app registrations
added through the control API.
"""

from __future__ import annotations

import hmac
import json
import pathlib
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

DEFAULT_IDENTITY_FILE = pathlib.Path(__file__).parent / "data" / "identity.json"


def _guid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{what} must be a GUID, got {value!r}") from None


def _need_str(data: Mapping, key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: '{key}' must be a non-empty string")
    return value


def check_redirect_uri(uri: Any) -> str:
    if not isinstance(uri, str):
        raise ValueError(f"redirect URI must be a string, got {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"redirect URI must be an absolute http(s) URL without a fragment: {uri!r}")
    return uri


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


@dataclass(frozen=True)
class Group:
    id: str
    display_name: str


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a pytest test class, whatever its name

    username: str
    password: str
    oid: str
    upn: str
    name: str
    given_name: str
    family_name: str
    groups: tuple[str, ...] = ()
    email: str | None = None  # Azure sends it mostly for guests
    idp: str | None = None  # a guest's home identity provider

    def public(self) -> dict:
        """What the control API shows: everything but the password."""
        return {
            "username": self.username,
            "oid": self.oid,
            "upn": self.upn,
            "name": self.name,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "groups": list(self.groups),
        }


@dataclass
class AppRegistration:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    display_name: str = ""


@dataclass
class IdentityConfig:
    tenant_id: str
    users: list[TestUser]
    groups: list[Group]
    apps: list[AppRegistration]
    domain: str = "aml-local.example"

    @classmethod
    def load(cls, path: pathlib.Path | None) -> "IdentityConfig":
        """Read an identity file; ``None`` gives the packaged test identities."""
        path = pathlib.Path(path) if path is not None else DEFAULT_IDENTITY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def from_dict(cls, data: Mapping) -> "IdentityConfig":
        if not isinstance(data, Mapping):
            raise ValueError("the identity file must hold a JSON object")
        tenant_id = _guid(data.get("tenant_id"), "tenant_id")
        groups = [
            Group(id=_guid(g.get("id"), "group id"), display_name=_need_str(g, "display_name", "group"))
            for g in data.get("groups", [])
        ]
        group_ids = {g.id for g in groups}
        if len(group_ids) != len(groups):
            raise ValueError("group ids must be unique")
        users = []
        for u in data.get("users", []):
            username = _need_str(u, "username", "user")
            member_of = tuple(_guid(g, f"group of user {username}") for g in u.get("groups", []))
            unknown = [g for g in member_of if g not in group_ids]
            if unknown:
                raise ValueError(f"user {username} is in unknown group(s) {unknown}")
            users.append(
                TestUser(
                    username=username,
                    password=_need_str(u, "password", f"user {username}"),
                    oid=_guid(u.get("oid"), f"oid of user {username}"),
                    upn=_need_str(u, "upn", f"user {username}"),
                    name=_need_str(u, "name", f"user {username}"),
                    given_name=u.get("given_name", ""),
                    family_name=u.get("family_name", ""),
                    groups=member_of,
                    email=u.get("email"),
                    idp=u.get("idp"),
                )
            )
        for key in ("username", "oid", "upn", "name"):
            values = [getattr(u, key).lower() for u in users]
            if len(set(values)) != len(values):
                # distinct display names too: 'name' is the authenticator's default username claim
                raise ValueError(f"users must have distinct '{key}' values")
        apps = []
        for a in data.get("apps", []):
            uris = a.get("redirect_uris")
            if not isinstance(uris, list):
                raise ValueError("app: 'redirect_uris' must be a list")
            apps.append(
                AppRegistration(
                    client_id=_need_str(a, "client_id", "app"),
                    client_secret=_need_str(a, "client_secret", "app"),
                    redirect_uris=[check_redirect_uri(x) for x in uris],
                    display_name=a.get("display_name", ""),
                )
            )
        if len({a.client_id for a in apps}) != len(apps):
            raise ValueError("app client_ids must be unique")
        domain = data.get("domain") or "aml-local.example"
        return cls(tenant_id=tenant_id, users=users, groups=groups, apps=apps, domain=domain)


class Directory:
    """The tenant at run time: its names, users by login or object id, apps by client id."""

    def __init__(self, config: IdentityConfig):
        self._tenant_names = (config.tenant_id, "common", "organizations", config.domain.lower())
        self._users_by_login: dict[str, TestUser] = {}
        for u in config.users:
            self._users_by_login[u.username.lower()] = u
            self._users_by_login[u.upn.lower()] = u
        self._users_by_oid = {u.oid: u for u in config.users}
        self._apps: dict[str, AppRegistration] = {a.client_id: a for a in config.apps}

    def is_tenant(self, tenant: str) -> bool:
        """Whether a URL's ``{tenant}`` names this tenant: its GUID, its domain, or a multi-tenant alias."""
        return tenant.lower() in self._tenant_names

    def user(self, login: str) -> TestUser | None:
        """A user by username or upn (case-insensitive)."""
        return self._users_by_login.get(login.lower())

    def check_password(self, login: str, password: str) -> TestUser | None:
        """The user ``login`` names, if ``password`` is theirs; None otherwise."""
        user = self.user(login) if login else None
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    def user_by_oid(self, oid: Any) -> TestUser | None:
        return self._users_by_oid.get(oid)

    def app(self, client_id: Any) -> AppRegistration | None:
        return self._apps.get(client_id)

    def has_app(self, client_id: Any) -> bool:
        return client_id in self._apps

    def first_client_id(self) -> str | None:
        """The app the identity file lists first: the hub's own registration."""
        return next(iter(self._apps), None)

    def register_app(self, client_id: Any, client_secret: Any, redirect_uris: Iterable[str]) -> AppRegistration:
        """Add (or replace) an app registration; raises ValueError on bad input."""
        if not isinstance(client_id, str) or not client_id.strip():
            raise ValueError("client_id must be a non-empty string")
        if not isinstance(client_secret, str) or not client_secret:
            raise ValueError("client_secret must be a non-empty string")
        if isinstance(redirect_uris, str):
            raise ValueError("redirect_uris must be a list of URLs")
        uris = [check_redirect_uri(u) for u in redirect_uris]
        app = self._apps[client_id] = AppRegistration(client_id, client_secret, uris)
        return app

    def logout_target_allowed(self, target: str, client_id: str | None) -> bool:
        """Where a sign-out may send the browser: the origin of a registered redirect URI.

        Of ``client_id``'s registration when that app is known, else of any,
        so a sign-out cannot be turned into an open redirect.
        """
        origin = _origin(target)
        apps = [self._apps[client_id]] if client_id in self._apps else list(self._apps.values())
        return origin is not None and any(_origin(u) == origin for a in apps for u in a.redirect_uris)
