"""Azure's Retail Prices API (``GET /api/retail/prices``), for the emulated sizes.

The real one (https://prices.azure.com/api/retail/prices) is public and
unauthenticated: an OData ``$filter`` over meters, answered in pages of 100
``Items`` with a ``NextPageLink`` that carries ``$skip``. Each VM size has
several pay-as-you-go ("Consumption") meters per region: Linux and Windows,
each also as Spot and Low Priority, told apart only by ``productName``
(Windows ones end in " Windows") and ``skuName`` (" Spot", " Low Priority"),
plus "Reservation" meters priced per term. A client has to filter them; this
one gives it the same mix.

The figures are the catalog's hints scaled per region (Europe costs a little
more), not Azure's prices. The filter understands what price tools send:
``field eq 'value'`` joined by ``and``/``or``, with parentheses; values
compare case-sensitively, as the real API's do (``priceType`` filters the
items' ``type``, as there).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from aiohttp import web

from .catalog import REGION_SIZES, SIZES

PAGE_SIZE = 100
REGION_FACTOR = {"westeurope": 1.12, "northeurope": 1.06, "eastus": 1.0, "westus2": 1.0}
REGION_DISPLAY = {"westeurope": "EU West", "northeurope": "EU North", "eastus": "US East", "westus2": "US West 2"}


def _series(name: str) -> str:
    # Standard_DS3_v2 -> "DSv2 Series" (what productName says), Standard_NC4as_T4_v3 -> "NCasT4 v3 Series"
    core = name.removeprefix("Standard_")
    letters = re.match(r"[A-Za-z]+", core).group(0)
    version = re.search(r"_v(\d+)$", core)
    return f"{letters}{'v' + version.group(1) if version else ''} Series"


def meters() -> list[dict]:
    """Every meter of the emulated VM sizes in every emulated region."""
    out = []
    for region, keys in REGION_SIZES.items():
        for key in keys:
            spec = SIZES[key]
            base = round(spec.price_usd_hour * REGION_FACTOR.get(region, 1.0), 4)
            short = spec.name.removeprefix("Standard_").replace("_", " ")
            windows = round(base + 0.046 * spec.vcpus, 4)
            rows = [
                ("", "", base, "Consumption"),
                ("", " Spot", round(base * 0.2, 4), "Consumption"),
                ("", " Low Priority", round(base * 0.2, 4), "Consumption"),
                (" Windows", "", windows, "Consumption"),
                (" Windows", " Spot", round(windows * 0.3, 4), "Consumption"),
                ("", "", round(base * 0.62 * 8760, 2), "Reservation"),
            ]
            for i, (os_part, tier, price, kind) in enumerate(rows):
                item = {
                    "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
                    "armRegionName": region, "location": REGION_DISPLAY.get(region, region),
                    "effectiveStartDate": "2024-01-01T00:00:00Z",
                    "meterId": f"emulated-{region}-{key}-{i}", "meterName": short + tier,
                    "productId": f"EMU{key.upper()}", "skuId": f"EMU{key.upper()}/{i:04d}",
                    "productName": f"Virtual Machines {_series(spec.name)}{os_part}",
                    "skuName": short + tier, "serviceName": "Virtual Machines", "serviceId": "EMU0VM",
                    "serviceFamily": "Compute", "unitOfMeasure": "1 Hour" if kind == "Consumption" else "1 Year",
                    "type": kind, "isPrimaryMeterRegion": True, "armSkuName": spec.name,
                }
                if kind == "Reservation":
                    item["reservationTerm"] = "1 Year"
                out.append(item)
    return out


# filter names that differ from the item's field: priceType filters on ``type``
FIELD_OF = {"priceType": "type"}


class FilterError(ValueError):
    pass


_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_]*))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterError(f"cannot read the filter at {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group(1):
            out.append(("(", "("))
        elif m.group(2):
            out.append((")", ")"))
        elif m.group(3) is not None:
            out.append(("str", m.group(3).replace("''", "'")))
        else:
            out.append(("word", m.group(4)))
    return out


def parse_filter(text: str):
    """An OData ``$filter`` (eq, and, or, parentheses) as a predicate on an item."""
    tokens = _tokens(text or "")
    pos = 0

    def peek(kind=None, value=None):
        if pos >= len(tokens):
            return False
        k, v = tokens[pos]
        return (kind is None or k == kind) and (value is None or v.lower() == value)

    def take():
        nonlocal pos
        if pos >= len(tokens):
            raise FilterError("the filter ends too early")
        pos += 1
        return tokens[pos - 1]

    def term():
        if peek("("):
            take()
            inner = disjunction()
            if take()[0] != ")":
                raise FilterError("a '(' is not closed")
            return inner
        kind, field = take()
        if kind != "word":
            raise FilterError(f"expected a field name, not {field!r}")
        op_kind, op = take()
        if op_kind != "word" or op.lower() != "eq":
            raise FilterError(f"only 'eq' comparisons are understood (after {field!r})")
        kind, value = take()
        if kind != "str":
            raise FilterError(f"compare {field!r} with a quoted string")
        key = FIELD_OF.get(field, field)
        return lambda item: str(item.get(key, "")) == value

    def conjunction():
        parts = [term()]
        while peek("word", "and"):
            take()
            parts.append(term())
        return lambda item: all(p(item) for p in parts)

    def disjunction():
        parts = [conjunction()]
        while peek("word", "or"):
            take()
            parts.append(conjunction())
        return lambda item: any(p(item) for p in parts)

    if not tokens:
        return lambda item: True
    predicate = disjunction()
    if pos != len(tokens):
        raise FilterError(f"unexpected {tokens[pos][1]!r} in the filter")
    return predicate


class RetailPricesApi:
    def __init__(self, public_url: str = "", page_size: int = PAGE_SIZE):
        self.public_url = public_url.rstrip("/")
        self.page_size = page_size
        self.items = meters()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/retail/prices", self.prices)

    async def prices(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            keep = parse_filter(query.get("$filter", ""))
            skip = int(query.get("$skip", "0") or 0)
        except (FilterError, ValueError) as e:
            return web.json_response({"Error": {"Code": "BadRequest", "Message": f"Invalid OData: {e}"}}, status=400)
        matched = [i for i in self.items if keep(i)]
        page = matched[skip:skip + self.page_size]
        next_link = None
        if skip + self.page_size < len(matched):
            base = self.public_url or f"{request.scheme}://{request.host}"
            params = {k: v for k, v in query.items() if k != "$skip"}
            next_link = f"{base}/api/retail/prices?{urlencode({**params, '$skip': skip + self.page_size})}"
        return web.json_response({"BillingCurrency": "USD", "CustomerEntityId": "Default",
                                  "CustomerEntityType": "Retail", "Items": page, "NextPageLink": next_link,
                                  "Count": len(page)})
