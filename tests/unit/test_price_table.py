"""Prices: the table, what takes precedence, and reading Azure's Retail Prices API's items."""

import json

import pytest

from aml_emulator.retail import FilterError, meters, parse_filter
from aml_jupyterhub.aml_spawner import AMLSpawner  # at the top: it imports asyncssh, which runs ldconfig
from aml_jupyterhub.compute.models import VmSize
from aml_jupyterhub.prices import SHIPPED_TABLE, load_table, parse_table, with_prices
from aml_jupyterhub.retail_prices import fetch_items, linux_prices, meter_filter, refreshed


def test_shipped_table_says_where_and_when_and_prices_the_default_profiles():
    from aml_jupyterhub.profiles import DEFAULT_PROFILES

    raw = json.loads(SHIPPED_TABLE.read_text())
    assert "Retail Prices API" in raw["source"] and raw["retrieved"] and raw["currency"] == "USD"
    table = load_table()
    for p in DEFAULT_PROFILES:
        assert table.get("eastus", p["vm_size"]) > 0, p
    assert table.get("EastUS", "standard_ds3_v2") == table.get("eastus", "Standard_DS3_v2")  # any case


def _size(name, price=None):
    return VmSize(name=name, family="f", vcpus=2, memory_gb=7, gpus=0, price_per_hour=price)


def test_table_first_then_azures_estimate_then_nothing():
    table = parse_table({"regions": {"westeurope": {"Standard_DS2_v2": 0.171}}})
    sizes = {"standard_ds2_v2": _size("Standard_DS2_v2", 0.146), "standard_ds3_v2": _size("Standard_DS3_v2", 0.293),
             "standard_x": _size("Standard_X")}
    priced = with_prices(sizes, "westeurope", table)
    assert (priced["standard_ds2_v2"].price_per_hour, priced["standard_ds2_v2"].price_source) == (0.171, "table")
    assert (priced["standard_ds3_v2"].price_per_hour, priced["standard_ds3_v2"].price_source) == (0.293, "azure")
    assert priced["standard_x"].price_per_hour is None and priced["standard_x"].price_source == ""
    # another region: the table has nothing there
    assert with_prices(sizes, "eastus", table)["standard_ds2_v2"].price_per_hour == 0.146
    assert with_prices(sizes, None, table)["standard_ds2_v2"].price_source == "azure"


@pytest.mark.parametrize("raw,words", [
    ({}, "'regions' mapping"),
    ({"regions": {"eastus": [1]}}, "must map sizes to prices"),
    ({"regions": {"eastus": {"Standard_DS2_v2": "cheap"}}}, "must be a number, not 'cheap'"),
    ({"regions": {"eastus": {"Standard_DS2_v2": -1}}}, "must be a number"),
])
def test_bad_tables_say_what(raw, words):
    with pytest.raises(ValueError, match=words):
        parse_table(raw)


def test_price_table_setting_refuses_a_bad_file(tmp_path):
    from traitlets import TraitError

    bad = tmp_path / "prices.json"
    bad.write_text("{not json")
    with pytest.raises(TraitError, match="price_table_file: cannot read the price table"):
        AMLSpawner(price_table_file=str(bad))


def test_only_the_linux_pay_as_you_go_meter_is_kept():
    items = [m for m in meters() if m["armSkuName"] == "Standard_DS3_v2" and m["armRegionName"] == "westeurope"]
    kinds = {(m["productName"].endswith("Windows"), m["skuName"].rsplit(" ", 1)[-1], m["type"]) for m in items}
    assert len(kinds) >= 5  # the mix a client must sort out
    linux = [m for m in items if m["type"] == "Consumption" and not m["productName"].endswith("Windows")
             and not m["skuName"].endswith(("Spot", "Low Priority"))]
    assert len(linux) == 1
    assert linux_prices(items) == {"westeurope": {"Standard_DS3_v2": linux[0]["retailPrice"]}}


def test_the_latest_meter_in_effect_wins():
    base = {"type": "Consumption", "unitOfMeasure": "1 Hour", "productName": "Virtual Machines DSv2 Series",
            "skuName": "DS2 v2", "armRegionName": "eastus", "armSkuName": "Standard_DS2_v2"}
    items = [{**base, "retailPrice": 0.2, "effectiveStartDate": "2025-01-01T00:00:00Z"},
             {**base, "retailPrice": 0.1, "effectiveStartDate": "2023-01-01T00:00:00Z"}]
    assert linux_prices(items) == {"eastus": {"Standard_DS2_v2": 0.2}}


def test_filter_the_command_sends_is_understood_by_the_emulator():
    text = meter_filter(["westeurope", "eastus"], ["Standard_DS2_v2", "Standard_NC4as_T4_v3"])
    keep = parse_filter(text)
    got = {(m["armRegionName"], m["armSkuName"]) for m in meters() if keep(m)}
    assert got == {(r, s) for r in ("westeurope", "eastus") for s in ("Standard_DS2_v2", "Standard_NC4as_T4_v3")}
    assert all(m["type"] == "Consumption" for m in meters() if keep(m))
    assert "''" in meter_filter(["x"], ["it's"])  # a quote in a value is doubled, as OData wants


@pytest.mark.parametrize("bad", ["armSkuName gt 'x'", "(armSkuName eq 'x'", "armSkuName eq x", "eq 'x'"])
def test_emulator_refuses_a_filter_it_cannot_read(bad):
    with pytest.raises(FilterError):
        parse_filter(bad)


def test_fetch_follows_next_page_links_and_batches_sizes():
    asked = []

    def get_json(url):
        asked.append(url)
        if "page2" in url:
            return {"Items": [{"n": 2}], "NextPageLink": None}
        return {"Items": [{"n": 1}], "NextPageLink": "https://p/page2"}

    items = fetch_items("https://p/api", ["eastus"], [f"Standard_S{i}" for i in range(12)], get_json=get_json, batch=10)
    assert len(asked) == 4 and len(items) == 4  # two batches of sizes, two pages each


def test_refreshed_keeps_what_was_not_read_and_says_when():
    current = {"retrieved": "2024", "regions": {"eastus": {"Standard_DS2_v2": 0.146, "Standard_DS3_v2": 0.293}}}
    table = refreshed(current, {"eastus": {"standard_ds2_v2": 0.15}, "westeurope": {"Standard_DS2_v2": 0.17}},
                      api="https://prices.example/api/retail/prices", today="2026-12-03")
    assert table["regions"] == {"eastus": {"Standard_DS3_v2": 0.293, "standard_ds2_v2": 0.15},
                                "westeurope": {"Standard_DS2_v2": 0.17}}
    assert table["retrieved"] == "2026-12-03" and "Earlier entries: 2024" in table["source"]
    parse_table(table)  # what is written can be read
