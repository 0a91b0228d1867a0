"""Internal TLS pieces without a hub: a server's certificate (made once its
address is known), the proxy's certificates shared with its container, and
that container's CHP options."""

import json
import ssl
from argparse import Namespace

import pytest
from certipy import Certipy
from cryptography import x509

from aml_jupyterhub.proxy import proxy_tls_files, share_proxy_tls, withdraw_proxy_tls
from aml_jupyterhub.proxy_service import TLS_FILES, chp_command, hub_target, tls_published
from aml_jupyterhub.servertls import alt_names, make_server_tls


def test_alt_names_name_ips_and_hosts_after_the_loopback_ones():
    assert alt_names(["10.0.0.7", "tunnels", "", "127.0.0.1", "fd00::5"]) == [
        "DNS:localhost", "IP:127.0.0.1", "IP:10.0.0.7", "DNS:tunnels", "IP:fd00::5"]


@pytest.fixture
def store(tmp_path):
    certipy = Certipy(store_dir=str(tmp_path / "store"))
    certipy.create_ca("notebooks-ca")
    bundle = tmp_path / "trust.crt"
    bundle.write_text((tmp_path / "store" / "notebooks-ca" / "notebooks-ca.crt").read_text())
    return tmp_path / "store", bundle


def test_a_servers_certificate_names_its_address_and_leaves_no_key_behind(store):
    store_dir, bundle = store
    tls = make_server_tls(str(store_dir), "server-alice-default-0123", alt_names(["10.0.0.7"]), str(bundle))
    cert = x509.load_pem_x509_certificate(tls.cert.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.0.0.7"]
    ca = x509.load_pem_x509_certificate((store_dir / "notebooks-ca" / "notebooks-ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert "PRIVATE KEY" in tls.key and tls.ca == bundle.read_text()
    # the key pair is usable as a server's
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    (store_dir / "k.pem").write_text(tls.key)
    (store_dir / "c.pem").write_text(tls.cert)
    ctx.load_cert_chain(store_dir / "c.pem", store_dir / "k.pem")
    # nothing of it stays in the hub's store: not its files, not its record
    assert not (store_dir / "server-alice-default-0123").exists()
    assert "server-alice-default-0123" not in json.loads((store_dir / "certipy.json").read_text())


def shared_files(tmp_path, text="one"):
    src = tmp_path / "hub-certs"
    src.mkdir(exist_ok=True)
    certs, bundles = {}, {}
    for component in ("proxy-api", "proxy-client"):
        for kind in ("key", "crt"):
            (src / f"{component}.{kind}").write_text(f"{component} {kind} {text}")
        certs[component] = {"keyfile": str(src / f"{component}.key"), "certfile": str(src / f"{component}.crt")}
        (src / f"{component}-ca.crt").write_text(f"{component} bundle {text}")
        bundles[f"{component}-ca"] = str(src / f"{component}-ca.crt")
    return proxy_tls_files(certs, bundles)


def test_the_hub_shares_the_proxys_certificates_ready_last_and_only_when_they_change(tmp_path):
    dest = tmp_path / "proxy-secrets" / "internal-ssl"
    assert tls_published(str(dest)) == ""
    assert share_proxy_tls(dest, shared_files(tmp_path)) is True
    assert sorted(p.name for p in dest.iterdir()) == sorted([*TLS_FILES, "READY"])
    assert all((dest / n).stat().st_mode & 0o777 == 0o600 for n in TLS_FILES)
    assert (dest / "proxy-client.key").read_text() == "proxy-client key one"
    first = tls_published(str(dest))
    assert first
    assert share_proxy_tls(dest, shared_files(tmp_path)) is False  # same set: the proxy need not restart
    assert tls_published(str(dest)) == first
    assert share_proxy_tls(dest, shared_files(tmp_path, "two")) is True
    assert tls_published(str(dest)) not in ("", first)
    assert withdraw_proxy_tls(dest) is True
    assert list(dest.iterdir()) == [] and tls_published(str(dest)) == ""
    assert withdraw_proxy_tls(dest) is False


def test_the_proxy_container_runs_chp_with_the_hubs_tls_only_while_it_is_shared(tmp_path):
    args = Namespace(chp="chp", port=8000, api_port=8001, hub_url="http://hub:8081", tunnel_api_port=8002,
                     chp_log_level="info", internal_ssl=str(tmp_path))
    plain = chp_command(args)
    assert "--api-ssl-key" not in plain and plain[plain.index("--default-target") + 1] == "http://hub:8081"
    tls = chp_command(args, tls=True)
    assert tls[tls.index("--default-target") + 1] == "https://hub:8081"
    assert tls[tls.index("--client-ssl-key") + 1] == str(tmp_path / "proxy-client.key")
    assert {"--api-ssl-request-cert", "--api-ssl-reject-unauthorized", "--client-ssl-reject-unauthorized"} <= set(tls)
    assert hub_target("https://hub:8081", True) == "https://hub:8081"
