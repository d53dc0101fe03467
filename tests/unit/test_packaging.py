"""The resource image's Python dependencies: each runtime dependency of
pyproject.toml is pinned in resource/constraints.txt, within its range, and the
Dockerfile installs with those pins (a rebuilt image must gzip layers to the same
digests: they depend on isal's deflate)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "resource" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line}"
            out[canonicalize_name(name)] = version
    return out


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not pinned in resource/constraints.txt"
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name])


def test_the_image_installs_with_the_pins() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    installs = [" ".join(lines[i : i + 2]) for i, line in enumerate(lines) if "pip install" in line]
    assert len(installs) == 2  # the resource's venv, and the test stage
    for command in installs:
        assert "-c /src/resource/constraints.txt" in command, command
