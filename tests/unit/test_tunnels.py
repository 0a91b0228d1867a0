"""The tunnel service's pure parts: the request it accepts, the ssh command
it runs, the names it files tunnels under, and the token it shares."""

from __future__ import annotations

import concurrent.futures
import stat
import threading

import pytest

from aml_jupyterhub.proxy_service import shared_token
from aml_jupyterhub.tunnels import TunnelSpec, TunnelSpecError, check_key, known_hosts_line, ssh_command, tunnel_name

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjQ9 instance"
SPEC = dict(host="10.0.0.4", port=50000, user="azureuser", host_key=HOST_KEY, remote_port=41234, api_port=41235,
            hub_host="hub", hub_port=8081)


def option(argv: list[str], name: str) -> str:
    values = [argv[i + 1].split("=", 1)[1] for i, a in enumerate(argv[:-1])
              if a == "-o" and argv[i + 1].startswith(name + "=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def test_the_way_in_trusts_only_the_pinned_key_and_ends_when_its_forward_fails():
    spec = TunnelSpec(**SPEC)
    argv = ssh_command(spec, "in", key_file="/run/t/id", known_hosts_file="/run/t/kh", bind_ip="0.0.0.0",
                       local_port=9001)
    assert argv[:3] == ["ssh", "-N", "-T"] and argv[-2:] == ["--", "10.0.0.4"]
    assert argv[argv.index("-L") + 1] == "0.0.0.0:9001:127.0.0.1:41234" and "-R" not in argv
    assert argv[argv.index("-i") + 1] == "/run/t/id" and argv[argv.index("-F") + 1] == "/dev/null"
    assert (argv[argv.index("-p") + 1], argv[argv.index("-l") + 1]) == ("50000", "azureuser")
    assert option(argv, "StrictHostKeyChecking") == "yes" and option(argv, "UserKnownHostsFile") == "/run/t/kh"
    assert option(argv, "GlobalKnownHostsFile") == "/dev/null" and option(argv, "HostKeyAlias") == "instance"
    assert option(argv, "ExitOnForwardFailure") == "yes" and option(argv, "BatchMode") == "yes"
    assert option(argv, "IdentityAgent") == "none" and option(argv, "LogLevel") == "ERROR"
    assert option(argv, "Ciphers").split(",")[0] == "aes128-gcm@openssh.com"  # the fastest with AES-NI


def test_the_way_back_is_a_reverse_forward_to_the_hub_that_says_when_it_is_granted():
    argv = ssh_command(TunnelSpec(**SPEC), "back", key_file="k", known_hosts_file="h")
    assert argv[argv.index("-R") + 1] == "127.0.0.1:41235:hub:8081" and "-L" not in argv
    assert option(argv, "LogLevel") == "DEBUG1"  # ssh says "remote forward success" only at debug1
    with pytest.raises(TunnelSpecError, match="no 'back' leg"):
        ssh_command(TunnelSpec(**{**SPEC, "api_port": 0}), "back", key_file="k", known_hosts_file="h")


def test_the_pinned_host_key_is_filed_under_the_alias_without_its_comment():
    assert known_hosts_line(HOST_KEY) == "instance ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjQ9\n"


@pytest.mark.parametrize("field, value, text", [
    ("host", "-oProxyCommand=touch /tmp/x", "host"),
    ("host", "10.0.0.4 -R 1:x:2", "host"),
    ("user", "root -o x", "user"),
    ("host_key", "not a key", "host_key"),
    ("host_key", HOST_KEY + "\nssh-rsa AAAA", "host_key"),
    ("port", "22", "port number"),
    ("remote_port", 70000, "port number"),
    ("port", True, "port number"),
])
def test_a_request_that_would_change_the_command_is_refused_naming_the_field(field, value, text):
    with pytest.raises(TunnelSpecError, match=text):
        TunnelSpec.from_json({**SPEC, field: value})


def test_a_request_names_what_is_missing():
    with pytest.raises(TunnelSpecError, match="host_key is required"):
        TunnelSpec.from_json({k: v for k, v in SPEC.items() if k != "host_key"})
    with pytest.raises(TunnelSpecError, match="needs hub_host and hub_port"):
        TunnelSpec.from_json({**SPEC, "hub_host": ""})
    assert TunnelSpec.from_json(SPEC) == TunnelSpec(**SPEC)
    assert TunnelSpec.from_json(TunnelSpec(**SPEC).to_json()) == TunnelSpec(**SPEC)


def test_tunnel_names_are_safe_and_distinct_for_every_user_and_server():
    names = {tunnel_name(u, s) for u, s in [("erin@contoso.example", ""), ("erin@contoso.example", "gpu"),
                                            ("a b", ""), ("a_b", ""), ("a", "b-default"), ("a-b", "default")]}
    assert len(names) == 6
    for name in names:
        assert check_key(name) == name
    assert tunnel_name("../../etc", "") != "../../etc" and check_key(tunnel_name("../../etc", ""))
    for bad in ("..", ".hidden", "a/b", "a b", ""):
        with pytest.raises(TunnelSpecError):
            check_key(bad)


def test_the_shared_token_is_made_once_by_whoever_comes_first(tmp_path):
    path = tmp_path / "proxy-secrets" / "token"
    start = threading.Barrier(8)

    def take():
        start.wait()
        return shared_token(path)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: take(), range(8)))
    assert len(tokens) == 1 and len(tokens.pop()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temporary file left
    assert shared_token(path) == path.read_text().strip()
