"""What a version holds, and how it maps to one OCI image index.

A version is one index (``artifactType`` marks it as a release):

- one child manifest per image, exactly as the builder wrote it, annotated with
  the image's name and its path in the output directory; a multi-platform image
  is a child index, exactly as written, its platforms' manifests below it;
- one artifact manifest (empty config) for every other file: one gzip tar layer,
  annotated the way ORAS expects a directory, so ``oras pull`` unpacks it too;
- annotations on the index: created, version, revision, source, and the
  Concourse build that made it.

Only the index is tagged. This module is pure: it builds and parses bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import ImageError
from .oci import media_types as mt
from .oci.blobs import BlobSource, BytesBlob
from .oci.descriptor import Descriptor
from .oci.files_layer import FILES_ROOT, FilesLayer
from .oci.manifest import Index, build_index, build_manifest
from .oci.prepare import PreparedImage, PreparedIndex

RELEASE_TYPE = "application/vnd.concourse-builder-img.release.v1+json"
FILES_TYPE = "application/vnd.concourse-builder-img.files.v1"
PREFIX = "org.concourse-builder-img"
ROLE = f"{PREFIX}.role"
IMAGE_NAME = f"{PREFIX}.image.name"
IMAGE_PATH = f"{PREFIX}.image.path"
IMAGE_REPO_TAGS = f"{PREFIX}.image.repo-tags"
FILES_COUNT = f"{PREFIX}.files.count"
FILES_BYTES = f"{PREFIX}.files.bytes"
TITLE = "org.opencontainers.image.title"
ORAS_UNPACK = "io.deis.oras.content.unpack"
ORAS_DIGEST = "io.deis.oras.content.digest"


#: The directory get writes the output into, and the name of the files tar's root.
@dataclass(frozen=True)
class ReleaseImage:
    name: str  # the archive's path in the output directory, without ".tar"
    path: str  # the archive's path in the output directory
    image: PreparedImage | PreparedIndex  # an index: a multi-platform image, kept whole
    repo_tags: tuple[str, ...] = ()
    platform: dict[str, str] | None = None  # None for a multi-platform image


@dataclass(frozen=True)
class Release:
    images: tuple[ReleaseImage, ...]
    files: FilesLayer
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Encoded:
    """A release as content: blobs first, then child manifests, then the index."""

    blobs: tuple[BlobSource, ...]
    manifests: tuple[tuple[bytes, str], ...]
    index: bytes


def encode(release: Release) -> Encoded:
    empty = BytesBlob(mt.EMPTY_JSON)
    files_layer = Descriptor(
        mt.OCI_LAYER_GZIP,
        release.files.blob.digest,
        release.files.blob.size,
        {TITLE: FILES_ROOT, ORAS_UNPACK: "true", ORAS_DIGEST: release.files.uncompressed_digest},
    )
    files_manifest = build_manifest(
        mt.OCI_MANIFEST,
        Descriptor(mt.OCI_EMPTY, empty.digest, empty.size),
        [files_layer],
        artifact_type=FILES_TYPE,
        annotations={
            FILES_COUNT: str(release.files.count),
            FILES_BYTES: str(release.files.size),
        },
    )
    children: list[Descriptor] = []
    manifests: list[tuple[bytes, str]] = []
    blobs: dict[str, BlobSource] = {}
    for item in release.images:
        image = item.image
        annotations = {ROLE: "image", IMAGE_NAME: item.name, IMAGE_PATH: item.path}
        if item.repo_tags:
            annotations[IMAGE_REPO_TAGS] = json.dumps(list(item.repo_tags))
        children.append(
            Descriptor(
                image.media_type,
                image.manifest_digest,
                len(image.raw),
                annotations,
                platform=item.platform,
            )
        )
        manifests.extend(image.manifests)
        for blob in item.image.blobs:
            blobs.setdefault(blob.digest, blob)
    files_blob = BytesBlob(files_manifest)
    children.append(
        Descriptor(
            mt.OCI_MANIFEST,
            files_blob.digest,
            files_blob.size,
            {ROLE: "files"},
            artifact_type=FILES_TYPE,
        )
    )
    manifests.append((files_manifest, mt.OCI_MANIFEST))
    blobs.setdefault(empty.digest, empty)
    blobs.setdefault(release.files.blob.digest, release.files.blob)
    index = build_index(children, artifact_type=RELEASE_TYPE, annotations=release.annotations)
    return Encoded(tuple(blobs.values()), tuple(manifests), index)


@dataclass(frozen=True)
class StoredImage:
    name: str
    path: str
    descriptor: Descriptor
    repo_tags: tuple[str, ...]


@dataclass(frozen=True)
class StoredRelease:
    index: Index
    images: tuple[StoredImage, ...]
    files: Descriptor


def decode(index_raw: bytes) -> StoredRelease:
    """Read back what :func:`encode` wrote; refuse an index that is not a release."""
    index = Index.parse(index_raw)
    if index.artifact_type != RELEASE_TYPE:
        raise ImageError(
            f"the tagged index is not a concourse-builder-img release "
            f"(artifactType {index.artifact_type!r})"
        )
    images: list[StoredImage] = []
    files: Descriptor | None = None
    for child in index.manifests:
        role = child.annotations.get(ROLE)
        if role == "image":
            name, path = child.annotations.get(IMAGE_NAME), child.annotations.get(IMAGE_PATH)
            if not name or not path:
                raise ImageError(f"release index: image {child.digest} lacks its name or path")
            tags = tuple(json.loads(child.annotations.get(IMAGE_REPO_TAGS) or "[]"))
            images.append(StoredImage(name, path, child, tags))
        elif role == "files":
            files = child
    if files is None:
        raise ImageError("release index: no files artifact")
    return StoredRelease(index, tuple(images), files)
