"""A build whose image archive has a layer deleting a file and a layer replacing
a directory (opaque whiteout): get's rootfs shows the applied result."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.projects import EXPECTED_ROOTFS, image_project

pytestmark = pytest.mark.e2e


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
