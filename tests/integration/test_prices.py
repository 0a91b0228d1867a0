"""Prices end to end: ``aml-jupyterhub-prices`` reads the emulator's Retail
Prices API (paged, every meter kind mixed) into the table the hub reads;
the spawn form and the spawn page show the table's price, else AML's estimate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aml_emulator.catalog import SIZES
from aml_emulator.retail import REGION_FACTOR
from tests.harness.hub import Hub, spawn_ready
from tests.harness.net import free_port

COMMAND = str(Path(sys.executable).parent / "aml-jupyterhub-prices")


def _run(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_refresh_reads_linux_prices_of_each_region_through_every_page(emulator, tmp_path):
    out = tmp_path / "data" / "prices.json"
    api = f"{emulator.base_url}/api/retail/prices"
    done = _run("--region", "westeurope,eastus", "--region", "westus2", "--output", str(out), "--api", api,
                "--ca-bundle", str(emulator.ca_file))
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())
    for region in ("westeurope", "eastus", "westus2"):
        expected = round(SIZES["standard_ds3_v2"].price_usd_hour * REGION_FACTOR[region], 4)
        assert table["regions"][region]["Standard_DS3_v2"] == expected, (region, table["regions"][region])
    # the A100 size is not sold in the emulated westeurope: said, and not priced there
    assert "Standard_ND96asr_v4" in table["regions"]["eastus"]
    assert "Standard_ND96asr_v4" not in table["regions"]["westeurope"]
    assert "westeurope: " in done.stdout and "not sold there" in done.stdout and "Standard_ND96asr_v4" in done.stdout
    assert table["retrieved"] in table["source"] and api in table["source"]
    # sizes the emulator does not know keep the shipped figures, which say where they came from
    assert table["regions"]["eastus"]["Standard_D16s_v3"] > 0 and "Earlier entries: 2024" in table["source"]


def test_refresh_without_the_api_says_so_and_keeps_the_table(tmp_path):
    out = tmp_path / "prices.json"
    out.write_text(json.dumps({"retrieved": "before", "regions": {"eastus": {"Standard_DS2_v2": 0.1}}}))
    before = out.read_text()
    done = _run("--api", f"http://127.0.0.1:{free_port()}/api/retail/prices", "--output", str(out))
    assert done.returncode == 1
    assert "could not read" in done.stderr and "internet access" in done.stderr and "is unchanged" in done.stderr
    assert out.read_text() == before


def test_spawn_form_and_page_show_the_tables_price_else_amls(emulator, emu, tmp_path):
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"source": "test", "retrieved": "2026-12-03",
                                 "regions": {"westeurope": {"Standard_DS2_v2": 0.171}}}))
    hub = Hub(tmp_path / "hub", emulator, extra_config=f"""
        c.AMLSpawner.show_prices = True
        c.AMLSpawner.price_table_file = {str(table)!r}
    """).start()
    try:
        form = hub.form_login("ivy").get(f"{hub.url}/hub/spawn", timeout=60).text
        estimate = SIZES["standard_ds3_v2"].price_usd_hour  # AML's own estimatedVMPrices, from the emulator
        assert "about $0.17/hour" in form, form  # Small from the table
        assert f"about ${estimate:.2f}/hour" in form  # Medium: the table has none for westeurope
        events = spawn_ready(hub, "ivy", options={"profile": "small"})
        assert any("Small (Standard_DS2_v2) costs about $0.17 an hour while it runs" in e["message"]
                   for e in events), events
    finally:
        hub.stop()
