"""``source.images``: images the build leaves in buildah's store are saved by put
into the output directory and published as images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.tools import require

pytestmark = pytest.mark.e2e


def test_images_left_in_the_builder_store_are_saved(concourse: Concourse, tmp_path: Path) -> None:
    require("buildah")
    sources = tmp_path / "put"
    src = sources / "src"
    src.mkdir(parents=True)
    shutil.copy("/bin/busybox", src / "busybox")
    (src / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "mkdir", "/saved"]\n'
        "ENV SAVED=yes\n"
    )
    source = {
        "repository": str(tmp_path / "store"),
        "images": ["localhost/team/saved-by-put:1.0"],
        # Only builds: the image stays in buildah's store until put saves it.
        "command": "$DOCKER build -q -t localhost/team/saved-by-put:1.0 .",
    }
    put = concourse.put(source, {"context": "src"}, sources)
    assert put.returncode == 0, put.stderr
    assert (src / "release" / "saved-by-put.tar").is_file()
    names = {m["name"] for m in put.json["metadata"]}
    assert "image saved-by-put" in names

    dest = tmp_path / "get"
    get = concourse.get(source, put.json["version"], {"rootfs": True}, dest)
    assert get.returncode == 0, get.stderr
    image = dest / "images" / "saved-by-put"
    assert (image / "rootfs" / "saved").is_dir()
    assert "SAVED=yes" in json.loads((image / "metadata.json").read_text())["env"]


def test_an_image_the_build_did_not_make_fails_the_put(
    concourse: Concourse, tmp_path: Path
) -> None:
    require("buildah")
    sources = tmp_path / "put"
    (sources / "src").mkdir(parents=True)
    source = {
        "repository": str(tmp_path / "store"),
        "images": ["localhost/never-built:1"],
        "command": "true",
    }
    put = concourse.put(source, {"context": "src"}, sources)
    assert put.returncode == 1
    assert "localhost/never-built:1" in put.error_line
    assert concourse.check(source) == []
