"""Reading image archives in every shape, and writing them back out of a store."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from builder_resource.errors import DigestMismatchError
from builder_resource.oci import media_types as mt
from builder_resource.oci.archive_read import read_image_archive
from builder_resource.oci.archive_write import write_image
from builder_resource.oci.prepare import prepare_image
from builder_resource.store.layout import LayoutStore
from fixtures.archives import (
    digest,
    layer_tar,
    write_docker_archive,
    write_oci_archive,
)

LAYERS = [layer_tar({"a.txt": b"a" * 1000}), layer_tar({"b/c.txt": b"hello"})]


def test_oci_archive_keeps_its_manifest_bytes(tmp_path: Path) -> None:
    manifest = write_oci_archive(tmp_path / "o.tar", LAYERS)
    image = read_image_archive(tmp_path / "o.tar")
    assert image is not None and image.kind == "oci-archive"
    assert image.manifest is not None and image.manifest.raw == manifest
    assert [layer.compression for layer in image.layers] == ["gzip", "gzip"]
    prepared = prepare_image(image, tmp_path)
    assert prepared.manifest_digest == digest(manifest)


def test_dual_archive_is_read_from_its_oci_layout(tmp_path: Path) -> None:
    manifest = write_oci_archive(tmp_path / "d.tar", LAYERS, dual=True, docker_types=True)
    image = read_image_archive(tmp_path / "d.tar")
    assert image is not None and image.kind == "dual"
    assert image.manifest is not None and image.manifest.media_type == mt.DOCKER_MANIFEST
    assert image.repo_tags == ("app:1",)
    assert prepare_image(image, tmp_path).manifest_digest == digest(manifest)


def test_docker_archive_gets_gzipped_layers_and_a_schema2_manifest(tmp_path: Path) -> None:
    config = write_docker_archive(tmp_path / "x.tar", LAYERS)
    image = read_image_archive(tmp_path / "x.tar")
    assert image is not None and image.kind == "docker-archive" and image.manifest is None
    assert image.repo_tags == ("localhost/app:1",)
    assert [layer.compression for layer in image.layers] == ["none", "none"]
    first = prepare_image(image, tmp_path)
    again = prepare_image(read_image_archive(tmp_path / "x.tar"), tmp_path)  # type: ignore[arg-type]
    assert first.manifest.raw == again.manifest.raw  # same digests on every run
    assert first.manifest.media_type == mt.DOCKER_MANIFEST
    assert first.manifest.config.digest == digest(config)
    for source, raw in zip(first.layers, LAYERS, strict=True):
        with source.open() as f:
            assert gzip.decompress(f.read()) == raw
    types = {d.media_type for d in first.manifest.layers}
    assert types == {mt.DOCKER_LAYER_GZIP}


def test_what_is_not_a_single_image_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert read_image_archive(tmp_path / "notes.txt") is None
    with tarfile.open(tmp_path / "plain.tar", "w") as tar:
        tar.add(tmp_path / "notes.txt", "notes.txt")
    assert read_image_archive(tmp_path / "plain.tar") is None
    write_oci_archive(tmp_path / "two.tar", LAYERS, images=2)
    assert read_image_archive(tmp_path / "two.tar") is None


@pytest.mark.parametrize("fmt", ["docker", "oci", "oci-layout"])
def test_written_archives_read_back_with_the_same_digest(tmp_path: Path, fmt: str) -> None:
    write_oci_archive(tmp_path / "in.tar", LAYERS, dual=True, docker_types=True)
    image = prepare_image(read_image_archive(tmp_path / "in.tar"), tmp_path)  # type: ignore[arg-type]
    store = LayoutStore(tmp_path / "store")
    for blob in image.blobs:
        store.push_blob(blob)

    out = tmp_path / f"out-{fmt}"
    write_image(out, fmt, image.manifest, lambda d: store.open_blob(d.digest, d.size), ("app:1",))
    if fmt == "oci-layout":
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == image.manifest_digest
        assert (out / "blobs/sha256" / image.manifest_digest[7:]).read_bytes() == image.manifest.raw
        return
    back = read_image_archive(out)
    assert back is not None
    assert back.kind == ("dual" if fmt == "docker" else "oci-archive")
    assert back.manifest is not None and back.manifest.raw == image.manifest.raw
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    assert all(m.mtime == 0 and m.uid == 0 for m in members)
    assert [m.name for m in members] == sorted(m.name for m in members[:-3]) + [
        m.name for m in members[-3:]
    ]


def test_a_corrupt_blob_fails_the_write(tmp_path: Path) -> None:
    write_oci_archive(tmp_path / "in.tar", LAYERS)
    image = prepare_image(read_image_archive(tmp_path / "in.tar"), tmp_path)  # type: ignore[arg-type]
    store = LayoutStore(tmp_path / "store")
    for blob in image.blobs:
        store.push_blob(blob)
    victim = tmp_path / "store/blobs/sha256" / image.manifest.layers[0].digest[7:]
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        write_image(
            tmp_path / "out.tar",
            "docker",
            image.manifest,
            lambda d: store.open_blob(d.digest, d.size),
        )


def test_a_docker_archive_layer_must_match_its_diff_id(tmp_path: Path) -> None:
    write_docker_archive(tmp_path / "x.tar", LAYERS)
    image = read_image_archive(tmp_path / "x.tar")
    assert image is not None
    # Flip one byte of the first layer inside the archive.
    section = image.layers[0].source
    with open(tmp_path / "x.tar", "r+b") as f:
        f.seek(section.offset + 600)  # type: ignore[attr-defined]
        byte = f.read(1)
        f.seek(section.offset + 600)  # type: ignore[attr-defined]
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DigestMismatchError, match="layer"):
        prepare_image(image, tmp_path)
    # Nothing of the corrupt layer is left in scratch (the good layer's output may be).
    for leftover in tmp_path.glob("*.gz"):
        assert gzip.decompress(leftover.read_bytes()) == LAYERS[1]
