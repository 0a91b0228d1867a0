"""What a VM size costs per hour while it runs: the price table, then Azure's estimate.

The table (``prices.json`` beside this module, or an admin's file made by
``aml-jupyterhub-prices``) holds Linux pay-as-you-go hourly prices per region
and size, with where and when they were read. A size the table lacks for the
workspace's region takes the estimate AML's own size list gives
(``estimatedVMPrices``), when it gives one. An admin whose organisation pays
other prices (an agreement, a discount) writes them into the table file.

Reading the table is the only I/O here, cached by path and modification time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .compute.models import VmSize

SHIPPED_TABLE = Path(__file__).parent / "prices.json"


@dataclass(frozen=True)
class PriceTable:
    source: str
    retrieved: str  # when the figures were read (ISO date)
    currency: str
    regions: dict[str, dict[str, float]] = field(default_factory=dict)  # region -> lower-case size -> per hour

    def get(self, region: str | None, vm_size: str) -> float | None:
        return self.regions.get((region or "").lower(), {}).get(vm_size.lower())


def parse_table(raw: dict, where: str = "the price table") -> PriceTable:
    """A table from its JSON; ValueError naming what is wrong."""
    if not isinstance(raw, dict) or not isinstance(raw.get("regions"), dict):
        raise ValueError(f"{where} must be a JSON object with a 'regions' mapping of region -> size -> price")
    regions: dict[str, dict[str, float]] = {}
    for region, sizes in raw["regions"].items():
        if not isinstance(sizes, dict):
            raise ValueError(f"{where}: region {region!r} must map sizes to prices")
        for size, price in sizes.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                raise ValueError(f"{where}: the price of {size} in {region} must be a number, not {price!r}")
        regions[region.lower()] = {s.lower(): float(p) for s, p in sizes.items()}
    return PriceTable(source=str(raw.get("source", "")), retrieved=str(raw.get("retrieved", "")),
                      currency=str(raw.get("currency", "USD")), regions=regions)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> PriceTable:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read the price table {path}: {e}") from None
    return parse_table(raw, f"the price table {path}")


def load_table(path: str | os.PathLike | None = None) -> PriceTable:
    path = Path(path or SHIPPED_TABLE)
    return _load(str(path), path.stat().st_mtime if path.exists() else 0.0)


def with_prices(sizes: dict[str, VmSize], region: str | None, table: PriceTable) -> dict[str, VmSize]:
    """``sizes`` (lower-case name -> VmSize) with the table's price where it has
    one for ``region``, else Azure's estimate as AML gave it."""
    out = {}
    for key, size in sizes.items():
        listed = table.get(region, size.name)
        if listed is not None:
            out[key] = dataclasses.replace(size, price_per_hour=listed, price_source="table")
        elif size.price_per_hour is not None:
            out[key] = dataclasses.replace(size, price_source="azure")
        else:
            out[key] = size
    return out
