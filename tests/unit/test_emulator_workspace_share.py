"""The workspace file share's naming, the process runtime's ~/cloudfiles/code,
and the emulator's --docker-internet setting (no Docker needed here)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from aml_emulator.config import load_config
from aml_emulator.models import Instance
from aml_emulator.runtime.base import RuntimeInstance, workspace_share_id
from aml_emulator.runtime.docker import SHARE_MOUNT, share_mount, share_volume_name
from aml_emulator.runtime.process import ProcessRuntime

SUB = "00000000-0000-0000-0000-000000000000"
DOCKER_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # what Docker accepts


def test_share_id_is_the_workspace_name_made_safe_plus_a_hash_of_the_whole_identity():
    sid = workspace_share_id(f"{SUB}/aml-local/aml-local")
    assert re.fullmatch(r"aml-local-[0-9a-f]{8}", sid)
    # AML's names are case-insensitive, and the id ignores stray slashes and spaces
    assert workspace_share_id(f"{SUB}/AML-Local/AML-LOCAL") == sid
    assert workspace_share_id(f"/{SUB}/aml-local/aml-local/ ") == sid
    # one workspace name in two resource groups or subscriptions: two shares
    assert workspace_share_id(f"{SUB}/other-rg/aml-local") != sid
    assert workspace_share_id(f"11111111-1111-1111-1111-111111111111/aml-local/aml-local") != sid


def test_share_id_of_odd_names_fits_docker_and_file_names():
    for ws in (f"{SUB}/rg/My Workspace!", f"{SUB}/rg/___", f"{SUB}/rg/" + "x" * 80, f"{SUB}/rg/ws.1_a-b"):
        sid = workspace_share_id(ws)
        assert DOCKER_VOLUME_NAME.match(sid), sid
        assert "/" not in sid and len(sid) <= 32 + 1 + 8
    assert workspace_share_id(f"{SUB}/rg/___").startswith("ws-")
    assert workspace_share_id(f"{SUB}/rg/My Workspace!").startswith("my-workspace-")


def test_unknown_workspace_has_no_share():
    assert workspace_share_id("") == ""
    assert workspace_share_id(" / ") == ""
    assert share_volume_name(RuntimeInstance(name="ci-a", vm_size="Standard_DS1_v2")) is None


def test_docker_share_volume_and_mount_point():
    inst = RuntimeInstance(name="ci-a", vm_size="Standard_DS1_v2", workspace=f"{SUB}/aml-local/aml-local")
    other = RuntimeInstance(name="ci-b", vm_size="Standard_DS1_v2", workspace=f"{SUB}/aml-local/aml-local")
    name = share_volume_name(inst)
    assert name == f"aml-ws-{workspace_share_id(inst.workspace)}-code" == share_volume_name(other)
    assert DOCKER_VOLUME_NAME.match(name)
    # where AML mounts it: per instance name, the same share behind each
    assert share_mount(inst) == "/mnt/batch/tasks/shared/LS_root/mounts/clusters/ci-a/code"
    assert share_mount(other) == SHARE_MOUNT.format(name="ci-b")


def test_the_backend_tells_the_runtime_its_workspace():
    inst = Instance(workspace=(SUB, "aml-local", "aml-local"), location="westeurope", name="ci-a",
                    vm_size="Standard_DS1_v2", created_on="2024-01-01T00:00:00+00:00")
    assert inst.runtime_view().workspace == f"{SUB}/aml-local/aml-local"


def test_process_runtime_links_cloudfiles_code_to_a_share_kept_on_delete(tmp_path):
    runtime = ProcessRuntime(tmp_path)
    ws = f"{SUB}/aml-local/aml-local"
    a = RuntimeInstance(name="ci-a", vm_size="Standard_DS1_v2", workspace=ws)
    b = RuntimeInstance(name="ci-b", vm_size="Standard_DS1_v2", workspace=ws)
    elsewhere = RuntimeInstance(name="ci-c", vm_size="Standard_DS1_v2", workspace=f"{SUB}/aml-local/other")
    nowhere = RuntimeInstance(name="ci-d", vm_size="Standard_DS1_v2")

    async def scenario():
        for inst in (a, b, elsewhere, nowhere):
            await runtime.create(inst)
        share = tmp_path.resolve() / "workspaces" / workspace_share_id(ws) / "code"
        link_a = runtime.home_dir(a) / "cloudfiles" / "code"
        assert link_a.is_symlink() and link_a.resolve() == share
        (link_a / "note.txt").write_text("from a")
        assert (runtime.home_dir(b) / "cloudfiles" / "code" / "note.txt").read_text() == "from a"
        assert not (runtime.home_dir(elsewhere) / "cloudfiles" / "code" / "note.txt").exists()
        assert not (runtime.home_dir(nowhere) / "cloudfiles").exists()
        await runtime.create(a)  # again (idempotent): the link stays
        assert link_a.is_symlink()
        await runtime.destroy(a)
        assert not runtime.instance_dir(a).exists()
        assert (share / "note.txt").read_text() == "from a"  # the share outlives the instance
        assert (runtime.home_dir(b) / "cloudfiles" / "code" / "note.txt").read_text() == "from a"

    asyncio.run(scenario())


def test_process_runtime_leaves_a_directory_the_user_made_at_cloudfiles_code(tmp_path):
    runtime = ProcessRuntime(tmp_path)
    inst = RuntimeInstance(name="ci-a", vm_size="Standard_DS1_v2", workspace=f"{SUB}/rg/ws")
    mine = runtime.home_dir(inst) / "cloudfiles" / "code"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("mine")
    asyncio.run(runtime.create(inst))
    assert not mine.is_symlink() and (mine / "keep.txt").read_text() == "mine"


def test_docker_internet_flag_and_config_file(tmp_path):
    assert load_config(["--state-dir", str(tmp_path)]).docker_internet == "open"
    assert load_config(["--state-dir", str(tmp_path), "--docker-internet", "none"]).docker_internet == "none"
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"docker_internet": "none"}))
    assert load_config(["--state-dir", str(tmp_path), "--config", str(conf)]).docker_internet == "none"
    # flags win over the file
    cfg = load_config(["--state-dir", str(tmp_path), "--config", str(conf), "--docker-internet", "open"])
    assert cfg.docker_internet == "open"
    with pytest.raises(SystemExit):
        load_config(["--state-dir", str(tmp_path), "--docker-internet", "some"])
    conf.write_text(json.dumps({"docker_internet": "closed"}))
    with pytest.raises(SystemExit):
        load_config(["--state-dir", str(tmp_path), "--config", str(conf)])


def test_docker_internet_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        load_config(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--docker-internet {open,none}" in out
    assert "aml-emulator-offline" in out and "internal" in out


def test_docker_runtime_with_internet_none_uses_an_internal_network_of_its_own(tmp_path):
    from aml_emulator.runtime.docker import OFFLINE_NETWORK, DockerRuntime

    async def make(**kw):
        runtime = DockerRuntime(tmp_path, client=object(), **kw)
        await runtime.close()
        return runtime

    offline = asyncio.run(make(internet="none"))
    assert offline.network == OFFLINE_NETWORK == "aml-emulator-offline" and offline.slots == 8
    assert asyncio.run(make(internet="none", network="stack-net", slots=2)).network == "stack-net"
    assert asyncio.run(make()).network is None and asyncio.run(make()).slots == 0
    with pytest.raises(ValueError):
        asyncio.run(make(internet="closed"))
