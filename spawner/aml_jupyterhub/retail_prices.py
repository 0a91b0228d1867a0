"""``aml-jupyterhub-prices``: the price table read again from Azure's Retail Prices API.

    docker compose run --rm hub aml-jupyterhub-prices --region westeurope

The API (https://prices.azure.com/api/retail/prices) is public and needs no
login, only internet access. Each VM size has several hourly pay-as-you-go
meters per region (Linux, Windows, each also Spot and Low Priority); the
table keeps the Linux one, the price of a compute instance's VM. Sizes are
asked for in batches, so a refresh is a few requests, each with a timeout
and retries. The table written starts from the current one: entries not
read again are kept, and what was read says where and when.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .prices import SHIPPED_TABLE

API = "https://prices.azure.com/api/retail/prices"


class PricesError(Exception):
    """The API could not be read; the message says what to do."""


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def meter_filter(regions: list[str], sizes: list[str]) -> str:
    """The OData filter for the hourly pay-as-you-go VM meters of ``sizes`` in ``regions``."""
    where = " or ".join(f"armRegionName eq {_quoted(r)}" for r in regions)
    which = " or ".join(f"armSkuName eq {_quoted(s)}" for s in sizes)
    return f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and ({where}) and ({which})"


def linux_prices(items: list[dict]) -> dict[str, dict[str, float]]:
    """region -> size -> hourly price of the Linux pay-as-you-go meter, from
    the API's items (Windows, Spot, Low Priority and non-hourly ones left
    out; of several, the latest in effect)."""
    best: dict[tuple[str, str], tuple[str, float]] = {}
    for item in items:
        product, sku = item.get("productName", ""), item.get("skuName", "")
        if (item.get("type") != "Consumption" or item.get("unitOfMeasure") != "1 Hour"
                or product.endswith("Windows") or sku.endswith(("Spot", "Low Priority"))):
            continue
        key = (item.get("armRegionName", "").lower(), item.get("armSkuName", ""))
        since = item.get("effectiveStartDate", "")
        if key not in best or since >= best[key][0]:
            best[key] = (since, float(item["retailPrice"]))
    out: dict[str, dict[str, float]] = {}
    for (region, size), (_, price) in sorted(best.items()):
        out.setdefault(region, {})[size] = price
    return out


def http_get_json(url: str, *, timeout: float = 30, tries: int = 4, cafile: str | None = None,
                  sleep=time.sleep) -> dict:
    """GET ``url`` as JSON, retrying throttling (429, honouring Retry-After), 5xx and network errors."""
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    delay, last = 1.0, ""
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read()[:200].decode(errors='replace')}"
            if e.code != 429 and e.code < 500:
                raise PricesError(f"the Retail Prices API refused the request ({last})") from None
            wait = float(e.headers.get("Retry-After") or delay)
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
            last, wait = str(getattr(e, "reason", e)), delay
        if attempt + 1 < tries:
            sleep(min(wait, 30))
            delay *= 2
    raise PricesError(f"could not read {url.split('?')[0]} ({last}) after {tries} tries")


def fetch_items(api: str, regions: list[str], sizes: list[str], *, get_json=http_get_json, batch: int = 10,
                max_pages: int = 100) -> list[dict]:
    """Every meter the API has for ``sizes`` in ``regions``, page by page."""
    items: list[dict] = []
    for i in range(0, len(sizes), batch):
        url = f"{api}?{urllib.parse.urlencode({'$filter': meter_filter(regions, sizes[i:i + batch])})}"
        for _ in range(max_pages):
            page = get_json(url)
            items += page.get("Items") or []
            url = page.get("NextPageLink")
            if not url:
                break
        else:
            raise PricesError(f"the Retail Prices API gave more than {max_pages} pages; ask for fewer sizes")
    return items


def refreshed(current: dict, read: dict[str, dict[str, float]], *, api: str, today: str) -> dict:
    """The table to write: ``current`` with the prices read replacing theirs."""
    regions = {r: dict(sizes) for r, sizes in (current.get("regions") or {}).items()}
    for region, sizes in read.items():
        mine = regions.setdefault(region, {})
        for size, price in sizes.items():
            for old in [k for k in mine if k.lower() == size.lower()]:
                del mine[old]
            mine[size] = price
    return {
        "source": f"Azure Retail Prices API ({api}): Linux pay-as-you-go hourly retail prices (type Consumption; "
                  f"Spot, Low Priority and Windows meters left out) of {', '.join(sorted(read))}, read by "
                  f"aml-jupyterhub-prices on {today}. Earlier entries: {current.get('retrieved') or 'unknown'}.",
        "retrieved": today,
        "currency": "USD",
        "regions": {r: dict(sorted(s.items())) for r, s in sorted(regions.items())},
    }


def _profile_sizes(path: str) -> list[str]:
    try:
        return [p["vm_size"] for p in json.loads(Path(path).read_text()) if isinstance(p, dict) and p.get("vm_size")]
    except (OSError, json.JSONDecodeError, TypeError):
        return []


def main(argv: list[str] | None = None, environ=None) -> int:
    environ = os.environ if environ is None else environ
    data_dir = environ.get("HUB_DATA_DIR")
    default_out = str(Path(data_dir) / "prices.json") if data_dir else "prices.json"
    ap = argparse.ArgumentParser(prog="aml-jupyterhub-prices", description=__doc__.split("\n\n")[0])
    ap.add_argument("--region", action="append", default=[],
                    help="Azure region to read (repeat, or comma-separate), e.g. westeurope. Default: the table's.")
    ap.add_argument("--size", action="append", default=[],
                    help="VM size to read (repeat). Default: the table's sizes and the profiles' (AML_PROFILES_FILE).")
    ap.add_argument("--output", default=default_out, help=f"the table to write (default: {default_out}); "
                    "the hub reads HUB_DATA_DIR/prices.json when it exists")
    ap.add_argument("--api", default=API, help="the Retail Prices API's URL (the emulator's in local mode)")
    ap.add_argument("--ca-bundle", default=None, help="CA file to trust for --api (the emulator's ca.pem)")
    args = ap.parse_args(argv)

    out = Path(args.output)
    current_path = out if out.exists() else SHIPPED_TABLE
    try:
        current = json.loads(current_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"aml-jupyterhub-prices: cannot read {current_path} ({e}); move it away or fix it", file=sys.stderr)
        return 2
    regions = [r.strip().lower() for arg in args.region for r in arg.split(",") if r.strip()]
    regions = regions or sorted(current.get("regions") or {})
    known = {s.lower(): s for sizes in (current.get("regions") or {}).values() for s in sizes}
    for s in _profile_sizes(environ.get("AML_PROFILES_FILE", "")) + args.size:
        known.setdefault(s.lower(), s)
    sizes = sorted(known.values(), key=str.lower)
    if not regions or not sizes:
        print("aml-jupyterhub-prices: no region or size to read: give --region and --size", file=sys.stderr)
        return 2
    print(f"reading {len(sizes)} VM sizes in {', '.join(regions)} from {args.api}", flush=True)
    try:
        items = fetch_items(args.api, regions, sizes,
                            get_json=lambda url: http_get_json(url, cafile=args.ca_bundle))
    except PricesError as e:
        print(f"aml-jupyterhub-prices: {e}. The hub needs internet access to {args.api.split('/api')[0]} for this; "
              f"{out} is unchanged.", file=sys.stderr)
        return 1
    read = linux_prices(items)
    for region in regions:
        got = read.get(region, {})
        missing = sorted(set(s.lower() for s in sizes) - {s.lower() for s in got})
        line = f"{region}: {len(got)} of {len(sizes)} sizes priced"
        if missing:
            line += f" (not sold there, or unknown to the API: {', '.join(known[m] for m in missing)})"
        print(line)
    table = refreshed(current, read, api=args.api, today=dt.date.today().isoformat())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
