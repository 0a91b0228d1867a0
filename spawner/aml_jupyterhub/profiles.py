"""The VM-size menu (profiles) and the workspace menu (projects).

Both are admin configuration, validated once into frozen dataclasses. The
same :func:`choose` serves the spawn form and the REST API's
``user_options``, so both refuse the same things with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .compute.models import VmSize

DEFAULT_PROFILES = [
    {"slug": "small", "display_name": "Small", "vm_size": "Standard_DS2_v2",
     "description": "Everyday notebooks and small data.", "default": True},
    {"slug": "medium", "display_name": "Medium", "vm_size": "Standard_DS3_v2",
     "description": "Larger data frames and parallel work."},
    {"slug": "large", "display_name": "Large", "vm_size": "Standard_DS4_v2",
     "description": "Heavy memory and CPU work."},
    {"slug": "gpu", "display_name": "GPU", "vm_size": "Standard_NC4as_T4_v3",
     "description": "One NVIDIA T4 GPU for deep learning."},
]


class OptionsError(ValueError):
    """A user's choice that is refused; the message is shown to them."""


def shown(value, limit: int = 40) -> str:
    """A user-supplied value as a message shows it: quoted, escaped (no line
    breaks to forge log lines with) and cut, whatever its size."""
    text = repr(value) if not isinstance(value, str) else repr(value)[1:-1]
    if len(text) > limit:
        text = text[:limit] + f"... ({len(str(value))} characters)"
    return f"'{text}'"


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    vm_size: str
    description: str = ""
    groups: tuple[str, ...] = ()  # empty: everyone
    default: bool = False
    max_hours: float | None = None  # its servers' maximum runtime (None: the hub's; 0: none)

    def allowed_for(self, user_groups: set[str], is_admin: bool = False) -> bool:
        return is_admin or not self.groups or bool(set(self.groups) & user_groups)


@dataclass(frozen=True)
class Project:
    slug: str
    display_name: str
    subscription_id: str
    resource_group: str
    workspace_name: str
    groups: tuple[str, ...] = ()

    def allowed_for(self, user_groups: set[str], is_admin: bool = False) -> bool:
        return is_admin or not self.groups or bool(set(self.groups) & user_groups)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subscription_id, self.resource_group, self.workspace_name)


def _slug_ok(slug) -> bool:
    return isinstance(slug, str) and slug and slug.replace("-", "").replace("_", "").isalnum()


def _entries(raw: list, what: str, cls, unique: str):
    """(position, entry, slug) of each entry of an admin's list, after the
    checks every list shares: a mapping, known keys, a unique slug."""
    seen = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"{what} #{i + 1} must be a mapping, not {type(item).__name__}")
        unknown = set(item) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{what} #{i + 1} has unknown keys: {', '.join(sorted(unknown))}")
        slug = item.get("slug")
        if not _slug_ok(slug):
            raise ValueError(f"{what} #{i + 1} needs a slug of letters, digits, '-' or '_'")
        if slug in seen:
            raise ValueError(unique.format(slug=slug))
        seen.add(slug)
        yield item, slug


def parse_profiles(raw: list[dict]) -> list[Profile]:
    """Validate the admin's profile list; raise ValueError naming the bad entry."""
    if not raw:
        raise ValueError("profiles must list at least one VM size")
    out = []
    for item, slug in _entries(raw, "profile", Profile, "profile slug {slug!r} is used twice"):
        if not item.get("vm_size"):
            raise ValueError(f"profile {slug!r} needs a vm_size, e.g. Standard_DS3_v2")
        hours = item.get("max_hours")
        if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours < 0):
            raise ValueError(f"profile {slug!r}: max_hours must be a number of hours (0: no limit), not {hours!r}")
        out.append(Profile(
            slug=slug,
            display_name=item.get("display_name") or slug,
            vm_size=item["vm_size"],
            description=item.get("description", ""),
            groups=tuple(item.get("groups") or ()),
            default=bool(item.get("default", False)),
            max_hours=None if hours is None else float(hours),
        ))
    return out


def parse_projects(raw: list[dict], fallback: Project) -> list[Project]:
    """Validate the admin's project (workspace) list; empty: only ``fallback``."""
    if not raw:
        return [fallback]
    out = []
    for item, slug in _entries(raw, "project", Project, "project slug {slug!r} is used twice"):
        missing = [k for k in ("subscription_id", "resource_group", "workspace_name") if not item.get(k)]
        if missing:
            raise ValueError(f"project {slug!r} is missing {', '.join(missing)}")
        out.append(Project(
            slug=slug,
            display_name=item.get("display_name") or slug,
            subscription_id=item["subscription_id"],
            resource_group=item["resource_group"],
            workspace_name=item["workspace_name"],
            groups=tuple(item.get("groups") or ()),
        ))
    return out


@dataclass(frozen=True)
class Menu:
    """What one user may pick from, sizes already filtered to the region's."""

    profiles: list[Profile]
    projects: list[Project]
    sizes: dict[str, VmSize] = field(default_factory=dict)  # lower-case vm size -> details
    hidden: dict[str, str] = field(default_factory=dict)  # slug -> why the user cannot pick it

    def default_profile(self) -> Profile:
        for p in self.profiles:
            if p.default:
                return p
        return self.profiles[0]


def menu_for(
    profiles: list[Profile],
    projects: list[Project],
    user_groups: set[str],
    is_admin: bool,
    offered: dict[str, VmSize] | None,
) -> Menu:
    """Profiles and projects ``user_groups`` allow; sizes the region does not
    offer are dropped (``offered`` None means unknown: keep all)."""
    hidden: dict[str, str] = {}
    allowed = []
    for p in profiles:
        if not p.allowed_for(user_groups, is_admin):
            hidden[p.slug] = "is not available to your groups"
        elif offered is not None and p.vm_size.lower() not in offered:
            hidden[p.slug] = f"uses {p.vm_size}, which the workspace's region does not offer"
        else:
            allowed.append(p)
    return Menu(
        profiles=allowed,
        projects=[pr for pr in projects if pr.allowed_for(user_groups, is_admin)],
        sizes=offered or {},
        hidden=hidden,
    )


def choose(menu: Menu, options: dict | None) -> tuple[Profile, Project]:
    """The profile and project ``options`` ask for, or OptionsError saying why not."""
    options = dict(options or {})
    unknown = sorted(set(options) - {"profile", "project"}, key=str)
    if unknown:
        names = ", ".join(shown(k)[1:-1] for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise OptionsError(f"Unknown option(s) {names}; only 'profile' and 'project' are accepted.")
    if not menu.projects:
        raise OptionsError("None of the configured workspaces is available to your groups. Ask an admin for access.")
    if not menu.profiles:
        raise OptionsError("None of the configured VM sizes is available to you. Ask an admin for access.")
    slug = options.get("profile")
    if slug in (None, ""):
        profile = menu.default_profile()
    else:
        if not isinstance(slug, str):
            raise OptionsError("The 'profile' option must be a string, the slug of a VM size.")
        matches = [p for p in menu.profiles if p.slug == slug]
        if not matches:
            choices = ", ".join(p.slug for p in menu.profiles)
            if slug in menu.hidden:
                raise OptionsError(f"The size '{slug}' {menu.hidden[slug]}. Choose one of: {choices}.")
            raise OptionsError(f"Unknown size {shown(slug)}. Choose one of: {choices}.")
        profile = matches[0]
    pslug = options.get("project")
    if pslug in (None, ""):
        if len(menu.projects) > 1:
            raise OptionsError(
                "Choose a project: " + ", ".join(p.slug for p in menu.projects) + "."
            )
        project = menu.projects[0]
    else:
        matches = [p for p in menu.projects if p.slug == pslug]
        if not matches:
            raise OptionsError(
                f"Unknown or unavailable project {shown(pslug)}. "
                f"Choose one of: {', '.join(p.slug for p in menu.projects)}."
            )
        project = matches[0]
    return profile, project


def size_facts(size: VmSize | None, show_price: bool) -> str:
    """What a size is, in a line: vCPUs, memory, GPUs, and the price when asked."""
    if size is None:
        return ""
    facts = []
    if size.vcpus:
        facts.append(f"{size.vcpus} vCPU{'s' if size.vcpus != 1 else ''}")
    if size.memory_gb:
        facts.append(f"{size.memory_gb:g} GiB RAM")
    if size.gpus:
        facts.append(f"{size.gpus} GPU{'s' if size.gpus != 1 else ''}")
    if show_price and size.price_per_hour:
        facts.append(f"about ${size.price_per_hour:.2f}/hour")
    return " · ".join(facts)
