"""A release's mapping to one OCI index, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder_resource import release as rel
from builder_resource.errors import ImageError
from builder_resource.oci import media_types as mt
from builder_resource.oci.archive_read import read_image_archive
from builder_resource.oci.blobs import BytesBlob
from builder_resource.oci.manifest import build_index
from builder_resource.oci.prepare import prepare_image
from fixtures.archives import layer_tar, write_oci_archive


def make_release(tmp_path: Path) -> rel.Release:
    write_oci_archive(tmp_path / "app.tar", [layer_tar({"x": b"x"})], dual=True, docker_types=True)
    image = prepare_image(read_image_archive(tmp_path / "app.tar"), tmp_path)  # type: ignore[arg-type]
    files = rel.FilesLayer(BytesBlob(b"tar.gz bytes"), "sha256:" + "c" * 64, 3, 120)
    return rel.Release(
        (
            rel.ReleaseImage(
                "sub/app",
                "sub/app.tar",
                image,
                ("app:1",),
                {"os": "linux", "architecture": "amd64"},
            ),
        ),
        files,
        {"org.opencontainers.image.version": "1.0.0"},
    )


def test_encode_then_decode(tmp_path: Path) -> None:
    release = make_release(tmp_path)
    encoded = rel.encode(release)
    index = json.loads(encoded.index)
    assert index["mediaType"] == mt.OCI_INDEX
    assert index["artifactType"] == rel.RELEASE_TYPE
    assert index["annotations"] == {"org.opencontainers.image.version": "1.0.0"}
    image_child, files_child = index["manifests"]
    assert image_child["mediaType"] == mt.DOCKER_MANIFEST
    assert image_child["platform"] == {"os": "linux", "architecture": "amd64"}
    assert files_child["artifactType"] == rel.FILES_TYPE
    # The files artifact: empty config, one layer titled for ORAS.
    files_manifest = json.loads(encoded.manifests[-1][0])
    assert files_manifest["config"]["mediaType"] == mt.OCI_EMPTY
    assert files_manifest["config"]["digest"] == mt.EMPTY_DIGEST
    (layer,) = files_manifest["layers"]
    assert layer["annotations"][rel.TITLE] == "release"
    assert layer["annotations"][rel.ORAS_UNPACK] == "true"
    # Blobs: image config + layer, the empty config, the files layer; no duplicates.
    digests = [b.digest for b in encoded.blobs]
    assert len(digests) == len(set(digests)) == 4
    stored = rel.decode(encoded.index)
    (image,) = stored.images
    assert (image.name, image.path, image.repo_tags) == ("sub/app", "sub/app.tar", ("app:1",))
    assert stored.files.artifact_type == rel.FILES_TYPE
    assert rel.encode(release).index == encoded.index  # deterministic


def test_an_index_that_is_not_a_release_is_refused() -> None:
    with pytest.raises(ImageError, match="not a concourse-builder-img release"):
        rel.decode(build_index([]))
