"""Platforms (image-spec image-index.md): naming them, and picking one out of an index.

A platform is written ``os/architecture[/variant]`` (``linux/arm64``,
``linux/arm/v7``), as ``docker build --platform`` takes it.
"""

from __future__ import annotations

import platform as _host
from collections.abc import Sequence

from .descriptor import Descriptor

#: ``uname -m`` -> the GOARCH name images use (and the variant, where one is usual).
MACHINE_ARCHITECTURES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def platform_name(platform: dict[str, str] | None) -> str:
    """``{"os": "linux", "architecture": "arm", "variant": "v7"}`` -> ``linux/arm/v7``."""
    if not platform:
        return "unknown"
    parts = [platform.get("os") or "unknown", platform.get("architecture") or "unknown"]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


def parse_platform(name: str) -> dict[str, str]:
    """``linux/arm/v7`` -> ``{"os": "linux", "architecture": "arm", "variant": "v7"}``."""
    parts = name.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"{name!r} is not os/architecture[/variant], e.g. linux/arm64")
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def host_platform() -> str:
    """The platform this process runs on, as images name it."""
    machine = _host.machine().lower()
    architecture, variant = MACHINE_ARCHITECTURES.get(machine, (machine, ""))
    return platform_name(
        {"os": _host.system().lower(), "architecture": architecture, "variant": variant}
    )


def is_runnable(descriptor: Descriptor) -> bool:
    """An index entry that is an image for some platform, not an attestation
    (BuildKit lists those under ``unknown/unknown``)."""
    platform = descriptor.platform or {}
    return platform.get("os", "unknown") != "unknown" and "architecture" in platform


def platforms_of(manifests: Sequence[Descriptor]) -> list[str]:
    """The platforms an index holds images for, in its order."""
    return list(dict.fromkeys(platform_name(d.platform) for d in manifests if is_runnable(d)))


def choose(manifests: Sequence[Descriptor], wanted: str) -> Descriptor | None:
    """The entry of ``manifests`` for platform ``wanted``, or None; a variant left
    out matches any (the first such entry wins)."""
    target = parse_platform(wanted)
    for descriptor in manifests:
        if not is_runnable(descriptor):
            continue
        have = descriptor.platform or {}
        if have.get("os") != target["os"] or have.get("architecture") != target["architecture"]:
            continue
        if "variant" in target and have.get("variant", "") != target["variant"]:
            continue
        return descriptor
    return None
