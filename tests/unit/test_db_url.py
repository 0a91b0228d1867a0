"""HUB_DB_URL and HUB_DB_PASSWORD: the hub's database on PostgreSQL, checked
before anything starts, with the password never in a message."""

import pytest
from sqlalchemy.engine import make_url
from traitlets.config import Config

from aml_jupyterhub.hubconfig import ConfigError, configure, database_url, load_settings
from aml_jupyterhub.settings import SECRET_VARIABLES
from tests.harness.repo import ROOT, example_env

CANARY = "db-canary-7c1e"
AZURE_PG = "postgresql://jupyterhub@myhub.postgres.database.azure.com:5432/jupyterhub?sslmode=require"


def settings(tmp_path, **env) -> dict:
    return load_settings({**example_env(), "HUB_DATA_DIR": str(tmp_path / "data"), "HUB_IDLE_CULL_TIMEOUT": "0",
                          "AML_PROFILES_FILE": str(ROOT / "hub" / "profiles.json"), **env})


def test_sqlite_in_the_data_dir_stays_the_default(tmp_path):
    c = Config()
    configure(c, settings(tmp_path), environ={})
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'data' / 'jupyterhub.sqlite'}"
    assert (tmp_path / "data" / "jupyterhub.sqlite").exists()


def test_the_password_goes_into_the_url_and_out_of_the_environment(tmp_path):
    password = f"{CANARY}:p@ss/w%rd#?&"  # every character a URL must quote
    environ = {"HUB_DB_URL": AZURE_PG, "HUB_DB_PASSWORD": password}
    c = Config()
    configure(c, settings(tmp_path, **environ), environ=environ)
    url = make_url(c.JupyterHub.db_url)
    assert url.password == password
    # the driver the image has (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://)
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.host, url.port, url.database) == (
        "jupyterhub", "myhub.postgres.database.azure.com", 5432, "jupyterhub")
    assert url.query == {"sslmode": "require"}
    assert "HUB_DB_PASSWORD" in SECRET_VARIABLES and "HUB_DB_PASSWORD" not in environ
    # the database is elsewhere: the data dir is made (secrets live there), no SQLite file in it
    assert (tmp_path / "data" / "secrets").is_dir()
    assert not (tmp_path / "data" / "jupyterhub.sqlite").exists()


def parts(url) -> tuple:
    return url.username, url.host, url.port, url.database, dict(url.query)


@pytest.mark.parametrize("url", [
    "postgresql://jupyterhub@db:5432/jupyterhub",
    "postgresql+psycopg2://jupyterhub@db/jupyterhub?sslmode=verify-full",
    "postgresql://jupyterhub@/jupyterhub",  # a local socket
])
def test_postgresql_urls_are_taken(tmp_path, url):
    built = make_url(database_url(settings(tmp_path, HUB_DB_URL=url, HUB_DB_PASSWORD="pw")))
    assert built.password == "pw" and parts(built) == parts(make_url(url))
    assert built.drivername == "postgresql+psycopg2"


def test_a_url_without_a_password_needs_none(tmp_path):
    url = "postgresql:///jupyterhub"  # a local socket, as the hub's own user (peer authentication)
    assert database_url(settings(tmp_path, HUB_DB_URL=url)) == "postgresql+psycopg2:///jupyterhub"


def test_a_password_in_the_url_is_taken_as_it_is(tmp_path):
    url = f"postgresql+psycopg2://jupyterhub:{CANARY}@db/jupyterhub"
    assert database_url(settings(tmp_path, HUB_DB_URL=url)) == url


def test_sqlite_elsewhere_is_taken(tmp_path):
    url = f"sqlite:///{tmp_path}/other.sqlite"
    assert database_url(settings(tmp_path, HUB_DB_URL=url)) == url


@pytest.mark.parametrize("url,words", [
    (f"mysql://jupyterhub:{CANARY}@db/jupyterhub", "is not supported"),
    (f"postgres://jupyterhub:{CANARY}@db/jupyterhub", "SQLAlchemy spells it postgresql://"),
    (f"postgresql+asyncpg://jupyterhub:{CANARY}@db/jupyterhub", "is not supported"),
    (f"postgresql+psycopg://jupyterhub:{CANARY}@db/jupyterhub", "is not supported"),  # psycopg 3: not in the image
    (f"jupyterhub:{CANARY}@db:5432/jupyterhub", "is not a database URL"),
    (f"db.example.org/{CANARY}", "is not a database URL"),
    ("sqlite://", "in memory"),
    (f"postgresql://jupyterhub:{CANARY}@db:5432", "names no database"),
])
def test_a_bad_url_is_refused_naming_the_variable_and_never_the_password(tmp_path, url, words):
    with pytest.raises(ConfigError) as e:
        settings(tmp_path, HUB_DB_URL=url)
    message = str(e.value)
    assert message.startswith("HUB_DB_URL") and words in message, message
    assert "postgresql://user@server:5432/database?sslmode=require" in message, message
    assert CANARY not in message, message


def test_a_password_needs_a_user_in_the_url(tmp_path):
    with pytest.raises(ConfigError, match="HUB_DB_URL='postgresql://db/jupyterhub' names no user") as e:
        settings(tmp_path, HUB_DB_URL="postgresql://db/jupyterhub", HUB_DB_PASSWORD=CANARY)
    assert CANARY not in str(e.value)


def test_two_passwords_are_refused_without_showing_either(tmp_path):
    with pytest.raises(ConfigError, match="has a password and HUB_DB_PASSWORD is set too") as e:
        settings(tmp_path, HUB_DB_URL=f"postgresql://jupyterhub:{CANARY}-a@db/jupyterhub",
                 HUB_DB_PASSWORD=f"{CANARY}-b")
    assert CANARY not in str(e.value)


@pytest.mark.parametrize("url", ["", "sqlite:////srv/jupyterhub/jupyterhub.sqlite"])
def test_a_password_without_a_postgresql_url_is_refused(tmp_path, url):
    with pytest.raises(ConfigError, match="HUB_DB_PASSWORD") as e:
        settings(tmp_path, HUB_DB_URL=url, HUB_DB_PASSWORD=CANARY)
    assert CANARY not in str(e.value)
