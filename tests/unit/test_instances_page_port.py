"""The instances page waits for a port another process holds, saying so
once a minute, and gives up only when its hub has gone (the real port, in a
real hub: tests/integration/test_product_config.py)."""

import errno
import os

from aml_jupyterhub.instances_page import listen_when_free


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class App:
    """An application whose port is held until ``free_at`` on the clock."""

    def __init__(self, clock, free_at):
        self.clock, self.free_at, self.listening = clock, free_at, None

    def listen(self, port, host):
        if self.clock.t < self.free_at:
            raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        self.listening = (host, port)


def test_the_page_waits_for_a_held_port_and_says_so_once_a_minute():
    clock, said = Clock(), []
    app = App(clock, free_at=150)
    assert listen_when_free(app, 10102, "127.0.0.1", hub_alive=lambda: True, retry=5,
                            sleep=clock.sleep, now=clock.now, say=said.append) is True
    assert app.listening == ("127.0.0.1", 10102) and clock.t == 150
    waiting = [line for line in said if "cannot listen" in line]
    assert len(waiting) == 3, said  # at 0, 60 and 120 s, not at every retry
    assert "127.0.0.1:10102 (Address already in use)" in waiting[0] and "HUB_INSTANCES_PAGE_PORT" in waiting[0]
    assert said[-1] == "aml-instances: listening on 127.0.0.1:10102 now"


def test_a_free_port_is_taken_without_a_word():
    clock, said = Clock(), []
    app = App(clock, free_at=0)
    assert listen_when_free(app, 10112, "10.0.0.4", hub_alive=lambda: True, sleep=clock.sleep, now=clock.now,
                            say=said.append) is True
    assert app.listening == ("10.0.0.4", 10112) and said == [] and clock.t == 0


def test_the_page_gives_up_waiting_when_its_hub_is_gone():
    clock, said = Clock(), []
    alive = iter([True, True, False])
    app = App(clock, free_at=1000)
    assert listen_when_free(app, 10102, "127.0.0.1", hub_alive=lambda: next(alive), retry=5,
                            sleep=clock.sleep, now=clock.now, say=said.append) is False
    assert app.listening is None and len(said) == 1 and clock.t == 10  # two waits, then the hub was gone


def _config_with_page(port=10102):
    from traitlets.config import Config

    from aml_jupyterhub.hubconfig import add_instances_page

    c = Config()
    add_instances_page(c, f"http://127.0.0.1:{port}")
    return c


def test_the_hub_leaves_the_page_out_when_its_port_stays_taken(capsys):
    from aml_jupyterhub.hubconfig import leave_out_the_instances_page_if_its_port_is_taken

    c, asked = _config_with_page(), []
    leave_out_the_instances_page_if_its_port_is_taken(
        c, wait=2, in_use=lambda host, port: asked.append((host, port)) or True, sleep=lambda s: None)
    assert c.JupyterHub.services == [] and c.JupyterHub.load_roles == []
    assert asked == [("127.0.0.1", 10102)] * 4  # every half second for the 2 s an orphan page needs to go
    err = capsys.readouterr().err
    assert "instances page is off" in err and "port 10102" in err and "HUB_INSTANCES_PAGE_PORT" in err


def test_the_hub_keeps_the_page_once_its_port_is_let_go(capsys):
    from aml_jupyterhub.hubconfig import leave_out_the_instances_page_if_its_port_is_taken

    c, held = _config_with_page(10112), iter([True, True, False])
    leave_out_the_instances_page_if_its_port_is_taken(c, in_use=lambda host, port: next(held), sleep=lambda s: None)
    assert [s["name"] for s in c.JupyterHub.services] == ["aml-instances"]
    assert c.JupyterHub.services[0]["environment"]["INSTANCES_PAGE_HUB_PID"] == str(os.getpid())
    assert capsys.readouterr().err == ""
