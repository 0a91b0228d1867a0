"""An admin's announcements and the spawner's notices on the hub pages (aml_jupyterhub.announcements)."""

from __future__ import annotations

from types import SimpleNamespace

from aml_jupyterhub.announcements import with_notices

ALICE = SimpleNamespace(name="alice")


def notices(user) -> str:
    return f"Your server will be stopped in 5 minutes, {user.name}." if user is not None else ""


def test_without_an_admins_announcement_the_pages_show_the_notices_alone():
    tv = with_notices({}, notices)
    assert tv["announcement"](ALICE) == "Your server will be stopped in 5 minutes, alice."
    assert tv["announcement"](None) == ""  # the login page: nothing to say, so hidden
    # pages without their own announcement fall back to "announcement": none is added
    assert set(tv) == {"announcement"}


def test_an_admins_announcement_and_the_notices_both_show_the_admins_first():
    tv = with_notices({"announcement": "Maintenance on <b>Friday</b>", "other": 1}, notices)
    assert tv["announcement"](ALICE) == "Maintenance on <b>Friday</b><br>Your server will be stopped in 5 minutes, alice."
    assert tv["announcement"](None) == "Maintenance on <b>Friday</b>"
    assert tv["other"] == 1


def test_a_pages_own_announcement_carries_the_notices_too():
    # JupyterHub shows announcement_home instead of announcement on the home page
    tv = with_notices({"announcement_home": "Welcome", "announcement_login": "Sign in with your account"}, notices)
    assert tv["announcement_home"](ALICE) == "Welcome<br>Your server will be stopped in 5 minutes, alice."
    assert tv["announcement_login"](None) == "Sign in with your account"
    assert "announcement_spawn" not in tv and tv["announcement"](ALICE).startswith("Your server")


def test_an_admins_callable_announcement_is_asked_per_user():
    tv = with_notices({"announcement": lambda user: f"Hello {user.name}" if user else ""}, notices)
    assert tv["announcement"](ALICE) == "Hello alice<br>Your server will be stopped in 5 minutes, alice."


def test_applied_twice_the_notices_show_once():
    once = with_notices({"announcement": "Maintenance"}, notices)
    twice = with_notices(once, notices)
    assert twice["announcement"] is once["announcement"]
    assert twice["announcement"](ALICE).count("Your server") == 1
