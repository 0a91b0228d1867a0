"""VM sizes and quotas the emulated regions offer.

Figures follow Azure's published sizes (vCPUs, memory, GPUs); prices are
rough Linux pay-as-you-go hints, only there so the spawner's price display has
something to show. A size missing from a region's list is "not offered" there,
which the emulator refuses exactly as AML does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VmSizeSpec:
    name: str
    family: str
    family_display: str
    vcpus: int
    memory_gb: float
    gpus: int = 0
    price_usd_hour: float = 0.0
    os_disk_mb: int = 1047552
    resource_disk_mb: int = 0

    def to_arm(self) -> dict:
        # rendering lives in render.py; kept as a method for callers that have a spec in hand
        from .render import vm_size

        return vm_size(self)


_DSV2 = ("standardDSv2Family", "Standard DSv2 Family")
_DSV3 = ("standardDSv3Family", "Standard DSv3 Family")
_ESV3 = ("standardESv3Family", "Standard ESv3 Family")
_NCSV3 = ("standardNCSv3Family", "Standard NCSv3 Family")
_NCAST4 = ("standardNCASv3_T4Family", "Standard NCASv3_T4 Family")
_NDV4 = ("standardNDASv4_A100Family", "Standard NDASv4_A100 Family")

SIZES: dict[str, VmSizeSpec] = {
    s.name.lower(): s
    for s in [
        VmSizeSpec("Standard_DS1_v2", *_DSV2, vcpus=1, memory_gb=3.5, price_usd_hour=0.073, resource_disk_mb=7168),
        VmSizeSpec("Standard_DS2_v2", *_DSV2, vcpus=2, memory_gb=7, price_usd_hour=0.146, resource_disk_mb=14336),
        VmSizeSpec("Standard_DS3_v2", *_DSV2, vcpus=4, memory_gb=14, price_usd_hour=0.293, resource_disk_mb=28672),
        VmSizeSpec("Standard_DS4_v2", *_DSV2, vcpus=8, memory_gb=28, price_usd_hour=0.585, resource_disk_mb=57344),
        VmSizeSpec("Standard_DS11_v2", *_DSV2, vcpus=2, memory_gb=14, price_usd_hour=0.185, resource_disk_mb=28672),
        VmSizeSpec("Standard_DS12_v2", *_DSV2, vcpus=4, memory_gb=28, price_usd_hour=0.371, resource_disk_mb=57344),
        VmSizeSpec("Standard_D4s_v3", *_DSV3, vcpus=4, memory_gb=16, price_usd_hour=0.192, resource_disk_mb=32768),
        VmSizeSpec("Standard_D8s_v3", *_DSV3, vcpus=8, memory_gb=32, price_usd_hour=0.384, resource_disk_mb=65536),
        VmSizeSpec("Standard_E4s_v3", *_ESV3, vcpus=4, memory_gb=32, price_usd_hour=0.252, resource_disk_mb=65536),
        VmSizeSpec("Standard_NC6s_v3", *_NCSV3, vcpus=6, memory_gb=112, gpus=1, price_usd_hour=3.06, resource_disk_mb=344064),
        VmSizeSpec("Standard_NC4as_T4_v3", *_NCAST4, vcpus=4, memory_gb=28, gpus=1, price_usd_hour=0.526, resource_disk_mb=180224),
        VmSizeSpec("Standard_ND96asr_v4", *_NDV4, vcpus=96, memory_gb=900, gpus=8, price_usd_hour=27.2, resource_disk_mb=6291456),
    ]
}

# Which sizes each region offers. The A100 size is deliberately absent from
# westeurope so "size not offered in this region" can be exercised locally.
_EVERYWHERE = [k for k in SIZES if k != "standard_nd96asr_v4"]
REGION_SIZES: dict[str, list[str]] = {
    "westeurope": _EVERYWHERE,
    "northeurope": _EVERYWHERE,
    "eastus": list(SIZES),
    "westus2": list(SIZES),
}

# Default per-region dedicated vCPU quotas: (total regional cores, per family).
DEFAULT_TOTAL_CORES = 100
DEFAULT_FAMILY_CORES = {
    "standardDSv2Family": 48,
    "standardDSv3Family": 48,
    "standardESv3Family": 24,
    "standardNCSv3Family": 12,
    "standardNCASv3_T4Family": 8,
    "standardNDASv4_A100Family": 0,
}


def sizes_for(location: str) -> list[VmSizeSpec]:
    keys = REGION_SIZES.get(location.lower(), _EVERYWHERE)
    return [SIZES[k] for k in keys]


def find_size(location: str, vm_size: str) -> VmSizeSpec | None:
    key = vm_size.lower()
    if key not in REGION_SIZES.get(location.lower(), _EVERYWHERE):
        return None
    return SIZES.get(key)
