"""The Dockerfile's promises that can be read off it: it builds with no build
argument, verifies every download, trusts the build-time CA wherever it reaches
the network, and ends with the resource image. (That it builds, offline, and what
the image holds, tests/resource_image shows.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Instructions with their continuation lines joined, comments dropped.
INSTRUCTIONS = [
    line
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
NETWORK_TOOLS = re.compile(r"\b(apt-get update|apt-get install|curl|pip install|go install)\b")


def build_args() -> dict[str, str]:
    """ARG defaults, first seen wins (global ARGs re-declared in a stage keep them)."""
    args: dict[str, str] = {}
    for line in INSTRUCTIONS:
        match = re.match(r"ARG (\w+)(?:=(.*))?$", line.strip())
        if match and match.group(1) not in args:
            args[match.group(1)] = match.group(2) or ""
    return args


def stages() -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (what it is FROM, the defaults applied; its instructions)."""
    args = build_args()
    found: dict[str, tuple[str, list[str]]] = {}
    for line in INSTRUCTIONS:
        match = re.match(r"FROM (\S+)(?: AS (\S+))?$", line.strip())
        if match:
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], match.group(1))
            body: list[str] = []
            found[match.group(2) or f"#{len(found)}"] = (base, body)
        elif found:
            body.append(line)
    return found


def test_the_last_stage_is_the_resource_image() -> None:
    assert list(stages().values())[-1][0] == "resource"


def test_no_build_argument_is_required() -> None:
    """Every stage the default build reaches has a base with a default, fully
    qualified (buildah refuses short names it has no alias for, as golang)."""
    found = stages()
    reached: set[str] = set()
    todo = [list(found)[-1]]
    while todo:
        base, body = found[todo.pop()]
        needs = [base] + [m for line in body for m in re.findall(r"COPY --from=(\S+)", line)]
        for name in needs:
            if name in found:
                if name not in reached:
                    reached.add(name)
                    todo.append(name)
            else:
                assert re.fullmatch(r"[a-z0-9.-]+\.[a-z]+/[a-z0-9./_-]+:[\w.-]+", name), name
    assert {"resource", "fetch", "venv", "spruce", "spruce-source"} <= reached
    assert "spruce-download" not in reached  # only with SPRUCE_FROM=download


def test_every_download_is_verified() -> None:
    for line in INSTRUCTIONS:
        if re.search(r"\bcurl\b.*-o (\S+)", line):
            target = re.search(r"\bcurl\b.*?-o (\S+)", line).group(1)
            assert "sha256sum -c" in line and target in line.split("sha256sum")[0], line
    # spruce, where no checksum is published: from source, through the module checksums.
    spruce_source = DOCKERFILE.split("AS spruce-source")[1].split("FROM ")[0]
    assert "go install" in spruce_source and "GONOSUMDB" not in spruce_source
    assert "GOFLAGS" not in spruce_source and "GOSUMDB=off" not in spruce_source
    assert build_args()["IMG_SHA256"] == (
        "cc9bf08794353ef57b400d32cd1065765253166b0a09fba360d927cfbd158088"
    )


def test_every_step_that_reaches_the_network_trusts_the_build_ca() -> None:
    steps = [line for line in INSTRUCTIONS if line.startswith("RUN") and NETWORK_TOOLS.search(line)]
    assert len(steps) >= 6
    for line in steps:
        assert "--mount=type=secret,id=ca" in line, line
        assert "source=image/with-build-ca,target=/run/with-build-ca" in line, line
        for call in NETWORK_TOOLS.finditer(line):
            # The wrapper as a command, not just as a mount's target.
            before = re.sub(r"--mount=\S+", "", line[: call.start()])
            assert "/run/with-build-ca" in before, f"{call.group(0)} without the CA: {line}"
