"""AMLSpawner's settings: every configurable trait, its default, its help and its check.

One schema: ``AMLSpawner`` inherits these, and the hub's ``.env`` settings
(``settings.py``) are derived from them (type, default, help, choices and
validation), so a new setting is written once, here. The traits are read by
the spawner's parts; nothing here does any I/O but ``hub_id``'s default
(the id kept in ``secrets_dir``).
"""

from __future__ import annotations

import os

from traitlets import Any, Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import bootstrap, builders, limits, naming, ownership
from .clouds import CLOUDS
from .credentials import CREDENTIAL_TYPES
from .keys import load_or_create_hub_id
from .profiles import DEFAULT_PROFILES, Project, parse_profiles, parse_projects


class Choice(Enum):
    """An Enum whose refusal names the setting and its choices in plain words."""

    def error(self, obj, value, error=None, info=None):
        choices = [repr(c) for c in self.values]
        raise TraitError(f"{self.name} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}")


class AMLSettings(LoggingConfigurable):
    """The configuration of AMLSpawner (``c.AMLSpawner.<name>``)."""

    # ---- workspace and credentials ------------------------------------

    subscription_id = Unicode("", config=True, help="Azure subscription id of the default workspace.")
    resource_group = Unicode("", config=True, help="Resource group of the default workspace.")
    workspace_name = Unicode("", config=True, help="Name of the default Azure ML workspace.")
    projects = List(
        Dict(),
        config=True,
        help="""Workspaces a user may pick from ("Select a project"). Each: slug, display_name,
        subscription_id, resource_group, workspace_name, and optional groups (JupyterHub group names
        allowed; empty: everyone). Empty (default): only the default workspace. With one choice
        available to a user, the form asks nothing.""",
    )
    azure_cloud = Choice(
        tuple(CLOUDS),
        "public",
        config=True,
        help=f"""The Azure cloud of the workspaces: {", ".join(CLOUDS)}. It sets the ARM endpoint and the
        login authority of the credential.""",
    )
    arm_endpoint = Unicode(
        "",
        config=True,
        help="""An ARM base URL other than the cloud's: the emulator's in local mode. Empty (default):
        the ARM endpoint of azure_cloud.""",
    )
    ca_bundle = Unicode("", config=True, help="CA file to trust for ARM calls (the emulator's ca.pem). Default: system CAs.")
    credential_type = Choice(
        CREDENTIAL_TYPES,
        "default",
        config=True,
        help=f"""Which credential ARM calls use: {", ".join(CREDENTIAL_TYPES)}. default is azure-identity's
        DefaultAzureCredential (environment, workload or managed identity, az login); static-token
        sends static_token and is allowed only with arm_endpoint set (the local emulator).""",
    )
    static_token = Unicode("", config=True, help="The bearer token of credential_type static-token (the emulator's).")
    emulator_token = Unicode(
        "", config=True, help="Deprecated since 0.2: set credential_type = 'static-token' and static_token."
    )
    credential = Any(
        None,
        allow_none=True,
        config=True,
        help="""An azure-identity TokenCredential object for ARM, used instead of credential_type
        (hubconfig makes the service principal's here, so its secret leaves the environment).""",
    )
    compute_client_factory = Any(
        None,
        allow_none=True,
        config=True,
        help="Callable(spawner, project) -> ComputeClient, to replace how clients are built (tests, custom auth).",
    )

    # ---- sizes ----------------------------------------------------------

    profiles = List(
        Dict(),
        default_value=DEFAULT_PROFILES,
        config=True,
        help="""The VM-size menu. Each: slug, display_name, vm_size (e.g. Standard_DS3_v2), description,
        optional groups (JupyterHub groups allowed; empty: everyone), optional default: true, optional
        max_hours (the size's maximum runtime, replacing max_runtime_hours; 0: none). Sizes
        the workspace's region does not offer are hidden. Default: Small, Medium, Large, GPU.""",
    )
    resize_instances = Bool(
        True,
        config=True,
        help="""When a user picks another size than their existing instance's, resize it (AML resizes a
        stopped instance; its disk and files are kept; a running one is stopped first). False: an
        instance keeps its size, and only its size can be picked for that server.""",
    )
    options_form_template = Unicode(
        "",
        config=True,
        help="""A Jinja template file for the options form, to replace the built-in one
        (aml_jupyterhub/templates/options_form.html, which documents what a template gets). Empty:
        the built-in form.""",
    )
    show_prices = Bool(
        False,
        config=True,
        help="""Show each size's hourly price on the spawn form and say it when a server starts: the price
        table's for the workspace's region, else the estimate AML gives.""",
    )
    price_table_file = Unicode(
        "",
        config=True,
        help="""JSON table of hourly prices per region and size, as aml-jupyterhub-prices writes it. Empty:
        HUB_DATA_DIR/prices.json when it exists (the command's default output), else the table shipped
        with the package (East US list prices).""",
    )
    sizes_cache_seconds = Float(3600, config=True, help="Seconds to cache the region's VM-size list.")

    # ---- limits on spend -------------------------------------------------

    max_running_servers_per_user = Integer(
        0,
        config=True,
        help="""How many servers (each on its own instance) one user may have running or starting at a
        time; a start beyond it is refused, naming the servers to stop. 0 (default): no limit. Admins
        count too.""",
    )
    group_vcpu_limits = Dict(
        config=True,
        help="""vCPUs the servers of a group's members may run at a time, {"group": vcpus} (JupyterHub
        group names: the Azure AD group object ids). A start that would go beyond a limit of one of the
        user's groups is refused, with the numbers. Default: none.""",
    )
    max_runtime_hours = Float(
        0,
        config=True,
        help="""Hours after its start at which a server is stopped whatever its activity (its instance
        then as stop_action says), with a warning on the user's hub pages before. A profile's max_hours
        replaces it for that size. 0 (default): no limit.""",
    )
    runtime_warning_minutes = Float(
        30, config=True, help="Minutes before max_runtime_hours ends a server from which the user is warned."
    )

    # ---- instances and ownership ---------------------------------------

    secrets_dir = Unicode(
        "aml-jupyterhub-secrets",
        config=True,
        help="""Directory (made 0700) where the spawner keeps this hub's id (hub-id) and one SSH key
        pair per instance (instance-keys/, 0600). A volume in production: losing it loses the keys of
        existing instances. Relative to the hub's working directory. Default: aml-jupyterhub-secrets.""",
    )
    operation_times_file = Unicode(
        "",
        config=True,
        help="""JSON file where the hub keeps how long its recent creates, starts and stops took (per
        size), for the spawn page's estimate and the status-poll schedule. Empty: kept in memory only.
        The hub sets it to HUB_DATA_DIR/operation-times.json.""",
    )
    reconciler_state_dir = Unicode(
        "",
        config=True,
        help="""Directory where the reconcilers keep the instances they suspect of running without a server,
        and since when, so that a hub restart does not start the count again. The hub sets it to
        HUB_DATA_DIR/reconciler. Empty: kept in memory only.""",
    )
    typical_operation_seconds = Dict(
        config=True,
        help="""Seconds an operation ({"create": 240, "start": 120, ...}) is expected to take until the hub
        has its own history: Azure ML's typical figures by default. Raise them for a region that is slower.""",
    )
    hub_id = Unicode(
        config=True,
        help="""This hub's id: the jupyterhub-hub tag of every instance it makes and the key of their
        names (1-64 letters, digits, '.', '_', '-'). Default: an id generated on first start and kept
        in secrets_dir/hub-id. Changing it makes the hub treat its existing instances as another
        hub's.""",
    )
    instance_name_prefix = Unicode(
        "jh", config=True, help="Prefix of instance names: 1-8 lowercase letters/digits, starting with a letter."
    )
    tags = Dict(
        config=True,
        help="Azure tags for every instance (the spawner adds jupyterhub-hub, jupyterhub-user and jupyterhub-server).",
    )
    subnet_id = Unicode("", config=True, help="Full ARM id of a VNet subnet for the instances. Default: none.")
    enable_public_ip = Bool(True, config=True, help="Give instances a public IP. False needs subnet_id (or a managed VNet).")
    setup_script = Unicode(
        "", config=True, help="Startup script on the workspace file share (e.g. Users/admin/setup.sh), run at each start."
    )
    setup_script_args = Unicode("", config=True, help="Arguments for setup_script.")
    idle_shutdown_minutes = Integer(
        None,
        allow_none=True,
        config=True,
        help="""AML's own idle shutdown (15-4320 minutes), a backstop for the hub's culler. AML does not
        see SSH-started servers, so the default is off in proxy mode and 60 in redirect mode.""",
    )
    stop_schedule = Unicode(
        "",
        config=True,
        help="""A cron expression (5 fields, e.g. "0 22 * * *") at which AML itself stops each new instance,
        a backstop that works while the hub is down or unreachable: AML's own schedule, set when the hub
        creates an instance (existing ones keep theirs). A server on an instance stopped so ends; its
        files are kept. Empty (default): none.""",
    )
    stop_schedule_time_zone = Unicode(
        "UTC", config=True, help='The time zone of stop_schedule, as AML names them (Windows names, e.g. "W. Europe Standard Time").'
    )
    stop_action = Choice(
        ("stop", "delete", "keep"),
        "stop",
        config=True,
        help="""What stopping a server does to its instance: "stop" (default: no compute cost, disk and
        files kept), "delete" (removes the instance and its disk), or "keep" (leave it running). It
        also applies when a server ends on its own or fails to start, and to instances the reconciler
        finds running without a server.""",
    )
    delete_forever_action = Choice(
        ("keep", "delete"),
        "keep",
        config=True,
        help="""What removing a server (or its user) from the hub does to its instance: "keep"
        (default: the instance and its disk stay, stopped, for an admin to delete) or "delete"
        (the instance, its disk and its SSH key are deleted).""",
    )
    reconcile_interval = Float(
        300,
        config=True,
        help="""Seconds between two lists of each workspace's instances, shared by every server's
        poll() and compared with the hub's servers: a Running instance of this hub without an active
        server is stopped within two intervals. 0 turns it off (poll() then reads each instance).""",
    )

    # ---- connection -----------------------------------------------------

    connect_mode = Choice(
        ("proxy", "direct", "redirect"),
        "proxy",
        config=True,
        help=""""proxy": the hub starts jupyterhub-singleuser on the instance over SSH and proxies to
        it through SSH tunnels (all hub features; the hub needs only the instance's SSH port).
        "direct": started the same way, but the proxy routes straight to the instance's private IP with
        JupyterHub's internal TLS (all hub features; the hub must be in the instances' VNet and reachable
        from it). "redirect": the instance is created on behalf of the user (needs auth_state with the
        Azure AD oid) and the user is sent to the instance's own JupyterLab.""",
    )
    ssh_key_file = Unicode(
        "aml-jupyterhub-ssh/id_ed25519",
        config=True,
        help="""The SSH key version 0.1 shared between all instances: still used (never made) for
        the instances created with it, until they are recreated. New instances get a key of their own
        in secrets_dir. Relative to the hub's working directory.""",
    )
    ssh_user = Unicode("azureuser", config=True, help="SSH user on the instance.")
    ssh_port = Integer(0, config=True, help="SSH port; 0 (default): the port the instance reports (50000 on a public IP).")
    ssh_address = Choice(
        ("public", "private"),
        "public", config=True, help='Address to SSH to: "public" IP or "private" IP (hub in the same VNet).')
    ssh_connect_timeout = Float(20, config=True, help="Seconds to wait for the instance's SSH server.")
    ssh_ready_timeout = Float(
        180, config=True, help="Seconds to keep retrying SSH after the instance reports Running (sshd may still be booting)."
    )
    singleuser_pythons = List(
        Unicode(),
        default_value=bootstrap.DEFAULT_PYTHONS,
        config=True,
        help="""Pythons on the instance the hub may run the server with, in order of preference ($HOME and
        globs expand on the instance). One that already holds JupyterHub of the hub's version is used as it is;
        otherwise the hub installs JupyterHub over the first one with Python 3.10+ and a Jupyter server (Azure
        ML's envs). Default: AML's SDK v2 env, every other /anaconda env, the 0.1 install's venv, python3.""",
    )
    singleuser_install_command = Unicode(
        "",
        config=True,
        help="""An admin's own shell command that installs jupyterhub=={version} on the instance where
        singleuser_pythons then finds it, instead of the hub's own install. Empty (default): the hub sends
        JupyterHub's wheels over SSH and installs them with no package index (the instance needs no internet).""",
    )
    wheelhouse_dirs = List(
        Unicode(),
        default_value=["/opt/aml-jupyterhub/wheelhouse"],
        config=True,
        help="""Read-only wheelhouses (python -m aml_jupyterhub.wheelhouse fills one) searched for JupyterHub's
        wheels to send to an instance. Default: the hub image's, with CPython 3.10-3.13 on x86_64.""",
    )
    wheel_cache_dir = Unicode(
        "",
        config=True,
        help="""The hub's own wheelhouse, for targets the read-only ones lack; filled from the hub's package
        index when wheel_download allows. The hub sets it to HUB_DATA_DIR/wheelhouse. Empty: none.""",
    )
    wheel_download = Bool(
        True,
        config=True,
        help="""Whether the hub may fetch JupyterHub's wheels from its own package index (pip download) for an
        instance whose Python no wheelhouse covers. The instance itself never needs the internet.""",
    )
    install_timeout = Float(900, config=True, help="Seconds allowed for installing JupyterHub on the instance.")
    lab_news = Bool(
        False,
        config=True,
        help="""Whether JupyterLab fetches the official Jupyter news and checks for its own updates (requests
        from the instance to the internet), for every user, without asking each one. False: never, and no
        prompt. Servers the hub installs JupyterHub for; redirect mode's AML JupyterLab is AML's own.""",
    )
    tunnel_bind_ip = Unicode("127.0.0.1", config=True, help="Hub-side address the SSH tunnel to the server listens on.")
    tunnel_connect_ip = Unicode("", config=True, help="Address the proxy uses to reach the tunnel. Default: tunnel_bind_ip.")
    redirect_bind_ip = Unicode("127.0.0.1", config=True,
                               help="Redirect mode: where the hub's redirect endpoint listens (compose: 0.0.0.0).")
    redirect_port = Integer(0, config=True, help="Redirect mode: the endpoint's port (0: any free one; compose: 8083).")
    redirect_connect_ip = Unicode("", config=True, help="""Redirect mode: where the proxy reaches the endpoint
        (compose: the hub's service name). Default: redirect_bind_ip.""")
    tunnel_service_url = Unicode(
        "",
        config=True,
        help="""The tunnel service (``aml-jupyterhub-proxy``, the tunnels container in compose.yaml) that carries
        proxy-mode servers' SSH tunnels as OpenSSH processes, so that users' traffic does not pass through the hub
        and a hub restart leaves it alone, e.g. http://tunnels:8002. Empty: the tunnels live in the hub process
        (a hub run on its own, without the proxy service).""",
    )
    tunnel_service_token = Unicode(
        "", config=True, help="The tunnel service's token (the proxy's; the hub configuration reads it from its file)."
    )

    # ---- timing and limits ---------------------------------------------

    arm_poll_interval = Float(
        300,
        config=True,
        help="""With the reconciler off, poll() in proxy mode asks AML about the instance at most this
        often (seconds); SSH checks the server in between.""",
    )
    call_timeout = Float(120, config=True, help="Budget in seconds for one AML call, retries included.")
    operation_timeout = Float(1800, config=True, help="Seconds allowed for one long AML operation (create, start, stop, delete).")
    retry_total = Integer(4, config=True, help="Retries of a throttled (429) or failed (5xx) AML call.")
    wait_interval = Float(
        5,
        config=True,
        help="""Seconds between reads while waiting on an operation the hub did not start; also the
        first pause before a failed stop is tried again in the background (doubling up to 60 s).""",
    )
    executor_threads = Integer(16, config=True, help="Threads for blocking Azure SDK calls, shared by all spawners.")

    @default("hub_id")
    def _hub_id_default(self):
        self._hub_id_generated = True
        return load_or_create_hub_id(self.secrets_dir)

    _hub_id_generated = False

    @validate("hub_id")
    def _check_hub_id(self, proposal):
        if not ownership.valid_hub_id(proposal.value):
            raise TraitError("hub_id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return proposal.value

    @validate("instance_name_prefix")
    def _check_prefix(self, proposal):
        if not naming.valid_prefix(proposal.value):
            raise TraitError("instance_name_prefix must be 1-8 lowercase letters or digits, starting with a letter")
        return proposal.value

    @validate("idle_shutdown_minutes")
    def _check_idle(self, proposal):
        v = proposal.value
        if v not in (None, 0) and not 15 <= v <= 4320:
            raise TraitError("idle_shutdown_minutes must be between 15 and 4320 (3 days), or 0/None for off")
        return v

    @validate("group_vcpu_limits")
    def _check_group_limits(self, proposal):
        try:
            return limits.parse_group_limits(proposal.value)
        except ValueError as e:
            raise TraitError(f"group_vcpu_limits: {e}") from None

    @validate("stop_schedule")
    def _check_stop_schedule(self, proposal):
        problem = builders.cron_problem(proposal.value) if proposal.value else ""
        if problem:
            raise TraitError(f"stop_schedule {proposal.value!r}: {problem}")
        return proposal.value

    # what 0 means for each setting that may not be negative (the refusal says it)
    _NOT_NEGATIVE = {
        "max_running_servers_per_user": "0 (no limit) or a number of servers",
        "max_runtime_hours": "0 (no limit) or a number of hours",
        "runtime_warning_minutes": "0 (no warning) or a number of minutes",
        "reconcile_interval": "0 (off) or a number of seconds",
    }

    @validate(*_NOT_NEGATIVE)
    def _check_not_negative(self, proposal):
        name = proposal.trait.name
        if proposal.value < 0:
            raise TraitError(f"{name} must be {self._NOT_NEGATIVE[name]}")
        return proposal.value

    @validate("profiles")
    def _check_profiles(self, proposal):
        try:
            parse_profiles(proposal.value)
        except ValueError as e:
            raise TraitError(f"profiles: {e}") from None
        return proposal.value

    @validate("price_table_file")
    def _check_price_table(self, proposal):
        from .prices import load_table  # reads the file: only when one is configured

        if proposal.value:
            try:
                load_table(proposal.value)
            except (OSError, ValueError) as e:
                raise TraitError(f"price_table_file: {e}") from None
        return proposal.value

    @validate("options_form_template")
    def _check_form_template(self, proposal):
        path = proposal.value
        if path and not os.path.isfile(path):
            raise TraitError(f"options_form_template {path!r} is not a file")
        return path

    @validate("projects")
    def _check_projects(self, proposal):
        # checked when configured, not at the first form a user opens
        try:
            parse_projects(proposal.value, Project("default", "default", "", "", ""))
        except ValueError as e:
            raise TraitError(f"projects: {e}") from None
        return proposal.value
