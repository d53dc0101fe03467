"""Collecting the output directory into images and one deterministic files tar."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from builder_resource.building.collect import collect, image_name
from fixtures.archives import layer_tar, write_oci_archive


def make_output(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "empty").mkdir()
    (root / "link").symlink_to("bin/tool")
    os.link(root / "bin" / "tool", root / "hard")
    (root / "images").mkdir()
    write_oci_archive(root / "images" / "app.tar", [layer_tar({"x": b"x"})])


def members(collected) -> dict[str, tarfile.TarInfo]:
    with collected.files.blob.open() as f:
        data = gzip.decompress(f.read())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_images_are_found_and_other_entries_tarred(tmp_path: Path) -> None:
    make_output(tmp_path / "out")
    collected = collect(tmp_path / "out", tmp_path)
    assert [(i.name, i.path) for i in collected.images] == [("images/app", "images/app.tar")]
    found = members(collected)
    assert sorted(found) == [
        "release",
        "release/bin",
        "release/bin/tool",
        "release/empty",
        "release/hard",
        "release/images",
        "release/link",
    ]
    assert found["release/bin/tool"].mode == 0o755
    assert found["release/link"].issym() and found["release/link"].linkname == "bin/tool"
    assert found["release/hard"].islnk() and found["release/hard"].linkname == "release/bin/tool"
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in found.values())
    assert collected.files.count == 1


def test_same_output_same_digest(tmp_path: Path) -> None:
    make_output(tmp_path / "a")
    make_output(tmp_path / "b")
    os.utime(tmp_path / "b" / "bin" / "tool", (1, 1))
    first = collect(tmp_path / "a", tmp_path)
    second = collect(tmp_path / "b", tmp_path)
    assert first.files.blob.digest == second.files.blob.digest
    assert first.files.uncompressed_digest == second.files.uncompressed_digest


def test_image_names() -> None:
    assert image_name("app.tar") == "app"
    assert image_name("sub/app.tar") == "sub/app"
    assert image_name("app.oci") == "app.oci"
