"""A build whose image archive has a layer deleting a file and a layer replacing
a directory (opaque whiteout): get's rootfs shows the applied result."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from fixtures.concourse import Concourse

pytestmark = pytest.mark.e2e

MAKE_IMAGE = Path(__file__).resolve().parents[1] / "fixtures" / "make_image.py"
EXPECTED_ROOTFS = ["data", "data/new", "swap-a", "swap-a/inner", "swap-b"]


def image_project(sources: Path) -> str:
    """A build context whose command writes release/layers.tar; returns the command."""
    (sources / "src").mkdir(parents=True, exist_ok=True)
    shutil.copy(MAKE_IMAGE, sources / "src" / "make_image.py")
    return f"mkdir -p release && {Path(sys.executable).name} make_image.py release/layers.tar"


def test_whiteouts_and_replaced_directories(concourse: Concourse, tmp_path: Path) -> None:
    sources = tmp_path / "put"
    command = image_project(sources)
    source = {"repository": str(tmp_path / "store")}
    put = concourse.put(source, {"context": "src", "command": command}, sources)
    assert put.returncode == 0, put.stderr

    dest = tmp_path / "get"
    get = concourse.get(source, put.json["version"], {"rootfs": True}, dest)
    assert get.returncode == 0, get.stderr
    root = dest / "images" / "layers" / "rootfs"
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == EXPECTED_ROOTFS
    assert (root / "swap-b").read_text() == "now a file"
    assert (root / "data" / "new").read_text() == "new"
