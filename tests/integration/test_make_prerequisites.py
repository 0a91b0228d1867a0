"""make test says what it needs before it runs, instead of failing deep in the suite."""

import subprocess

from tests.harness.repo import ROOT


def test_a_missing_chromium_is_named_with_how_to_get_it(tmp_path):
    missing = tmp_path / "no-chromium-here"
    r = subprocess.run(["make", "-s", "test-prerequisites", f"CHROMIUM={missing}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"make test needs Chromium at {missing} for the browser tests:" in r.stdout
    assert "apt-get install chromium" in r.stdout


def prerequisites(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    """make test-prerequisites with a Chromium that is there, and ``overrides`` (NAME=value)."""
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    return subprocess.run(["make", "-s", "test-prerequisites", f"CHROMIUM={chromium}", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_missing_certutil_is_named_with_how_to_get_it(tmp_path):
    r = prerequisites(tmp_path, f"CERTUTIL={tmp_path / 'no-certutil-here'}")
    assert r.returncode != 0
    assert "make test needs certutil" in r.stdout and "apt-get install libnss3-tools" in r.stdout, r.stdout


def test_a_missing_postgresql_server_is_named_with_how_to_get_it(tmp_path):
    r = prerequisites(tmp_path, f"POSTGRES_BIN={tmp_path / 'no-postgres-here'}")
    assert r.returncode != 0
    assert "PostgreSQL server" in r.stdout and "apt-get install postgresql" in r.stdout, r.stdout


def test_present_prerequisites_pass_quietly(tmp_path):
    r = prerequisites(tmp_path)
    assert (r.returncode, r.stdout) == (0, ""), r.stdout + r.stderr
