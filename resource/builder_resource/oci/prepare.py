"""Turning an image read from an archive into exact content to store.

An archive that carries a manifest keeps it byte for byte, so the image keeps its
digest. A docker-archive carries none: a Docker schema 2 manifest is written for
it, and its uncompressed layers are gzipped first (with a fixed header, so the
same layer always gives the same digest).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError
from . import media_types as mt
from .archive_read import ArchiveImage
from .blobs import BlobSource, FileSection, open_section
from .compression import gzip_writer
from .descriptor import Descriptor
from .digest import CHUNK, HashingWriter, sha256_digest
from .manifest import ImageManifest, build_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedImage:
    manifest: ImageManifest
    config: BlobSource
    layers: tuple[BlobSource, ...]

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest.raw)

    @property
    def blobs(self) -> tuple[BlobSource, ...]:
        return (self.config, *self.layers)


def prepare_image(image: ArchiveImage, scratch: Path) -> PreparedImage:
    if image.manifest is not None:
        layers = tuple(layer.source for layer in image.layers)
        return PreparedImage(image.manifest, image.config, layers)
    sources: list[BlobSource] = []
    descriptors: list[Descriptor] = []
    for layer in image.layers:
        if layer.compression == "none":
            source: BlobSource = gzip_to_file(layer.source, scratch)
            compression = "gzip"
        else:
            source, compression = layer.source, layer.compression
        sources.append(source)
        descriptors.append(
            Descriptor(mt.layer_type(mt.DOCKER_MANIFEST, compression), source.digest, source.size)
        )
    config = image.config
    raw = build_manifest(
        mt.DOCKER_MANIFEST, Descriptor(mt.DOCKER_CONFIG, config.digest, config.size), descriptors
    )
    return PreparedImage(ImageManifest.parse(raw, mt.DOCKER_MANIFEST), config, tuple(sources))


def gzip_to_file(source: BlobSource, scratch: Path) -> FileSection:
    """Compress a blob into ``scratch`` in one pass, hashing the output as it is written."""
    fd, name = tempfile.mkstemp(dir=scratch, suffix=".gz")
    path = Path(name)
    hasher = HashingWriter(os.fdopen(fd, "wb"))
    try:
        with open_section(source) as reader, hasher, gzip_writer(hasher) as gz:  # type: ignore[arg-type]
            while chunk := reader.read(CHUNK):
                gz.write(chunk)
    except OSError as e:
        path.unlink(missing_ok=True)
        raise ImageError(f"compressing layer {source.digest}: {e}") from e
    log.debug("gzipped layer %s: %d -> %d bytes", source.digest, source.size, hasher.size)
    return FileSection(path, 0, hasher.size, hasher.digest)
