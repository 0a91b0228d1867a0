"""Which host names Caddy may get certificates for (aml_jupyterhub.tls_names)."""

from jupyterhub.utils import subdomain_hook_idna

from aml_jupyterhub.tls_names import KnownHosts, known_hosts


def test_the_hub_each_user_and_each_service_have_a_host_and_nothing_else():
    users = ["alice@contoso.com", "bob", "Zoë"]
    hosts = known_hosts("hub.example.org", users, ["aml-instances--service.hub.example.org", ""],
                        subdomain_hook_idna)
    expected = {"hub.example.org", "aml-instances--service.hub.example.org",
                *(subdomain_hook_idna(u, "hub.example.org", kind="user").lower() for u in users)}
    assert hosts == expected
    assert "bob.hub.example.org" in hosts
    # a name that is not a user's host, even one spelling a user's name differently, is not the hub's
    assert "alice.hub.example.org" not in hosts and "bob.hub.example.org.evil.example" not in hosts
    assert "carol.hub.example.org" not in hosts and "example.org" not in hosts


def test_a_miss_reads_the_users_again_but_not_more_often_than_the_minimum_interval():
    now = [100.0]
    users = {"bob.hub.example.org"}
    reads = []

    def read():
        reads.append(now[0])
        return frozenset({"hub.example.org", *users})

    hosts = KnownHosts(read, min_refresh=2.0, clock=lambda: now[0])
    assert "BOB.hub.example.org." in hosts  # DNS names compare without case or the root's dot
    assert reads == [100.0]
    assert "bob.hub.example.org" in hosts and reads == [100.0]  # a hit reads nothing
    users.add("carol.hub.example.org")  # carol logs in for the first time
    for made_up in ("x1.hub.example.org", "x2.hub.example.org", "carol.hub.example.org"):
        assert made_up not in hosts  # within 2 s of the last read: made-up names cost no reading
    assert reads == [100.0]
    now[0] += 2.0
    assert "carol.hub.example.org" in hosts
    assert reads == [100.0, 102.0]
