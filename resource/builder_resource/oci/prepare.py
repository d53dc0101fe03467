"""Turning an image read from an archive into exact content to store.

An archive that carries a manifest keeps it byte for byte, so the image keeps its
digest. A docker-archive carries none: a Docker schema 2 manifest is written for
it, and its uncompressed layers are gzipped first (with a fixed header, so the
same layer always gives the same digest). A multi-platform image keeps its index
byte for byte the same way; only where the archive holds no index blob (a
docker-archive set, an index.json listing the platforms itself) is one written.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError
from . import media_types as mt
from .archive_read import ArchiveImage, ArchiveIndex
from .blobs import BlobSource, FileSection
from .descriptor import Descriptor
from .digest import HashingWriter, VerifyingReader, sha256_digest
from .gzip_writer import GZIP_BLOCK, BlockGzipWriter, gzip_backend
from .manifest import ImageManifest, Index, build_index, build_manifest, config_platform
from .platforms import platforms_of

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

    @property
    def raw(self) -> bytes:
        return self.manifest.raw

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def manifests(self) -> tuple[tuple[bytes, str], ...]:
        """Every manifest to push, in the order a registry accepts them."""
        return ((self.manifest.raw, self.manifest.media_type),)

    @property
    def platforms(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class PreparedIndex:
    """A multi-platform image: its index, exact bytes, and the image of each entry."""

    raw: bytes
    media_type: str
    images: tuple[PreparedImage, ...]

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.raw)

    @property
    def blobs(self) -> tuple[BlobSource, ...]:
        return tuple(blob for image in self.images for blob in image.blobs)

    @property
    def manifests(self) -> tuple[tuple[bytes, str], ...]:
        """Each platform's manifest first: a registry refuses an index whose
        manifests it does not have."""
        return (*(m for image in self.images for m in image.manifests), (self.raw, self.media_type))

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(platforms_of(Index.parse(self.raw).manifests))


def prepare(image: ArchiveImage | ArchiveIndex, scratch: Path) -> PreparedImage | PreparedIndex:
    """An image or a multi-platform image, ready to store."""
    if isinstance(image, ArchiveIndex):
        return prepare_index(image, scratch)
    return prepare_image(image, scratch)


def prepare_index(index: ArchiveIndex, scratch: Path) -> PreparedIndex:
    images = tuple(prepare_image(image, scratch) for _, image in index.images)
    if index.raw is not None:
        return PreparedIndex(index.raw, index.media_type, images)
    entries = []
    for (entry, _), image in zip(index.images, images, strict=True):
        platform = entry.platform if entry is not None and entry.platform else None
        if platform is None:
            with image.config.open() as f:
                platform = config_platform(f.read(16 << 20))
        raw = image.manifest.raw
        entries.append(
            Descriptor(image.media_type, sha256_digest(raw), len(raw), platform=platform)
        )
    return PreparedIndex(build_index(entries), mt.OCI_INDEX, images)


def prepare_image(image: ArchiveImage, scratch: Path) -> PreparedImage:
    if image.manifest is not None:
        layers = tuple(layer.source for layer in image.layers)
        return PreparedImage(image.manifest, image.config, layers)
    gzipped = _gzip_layers(
        [layer.source for layer in image.layers if layer.compression == "none"], scratch
    )
    sources: list[BlobSource] = []
    descriptors: list[Descriptor] = []
    for layer in image.layers:
        if layer.compression == "none":
            source: BlobSource = gzipped[layer.source.digest]
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


def _gzip_layers(layers: list[BlobSource], scratch: Path) -> dict[str, FileSection]:
    """Gzip layers one after the other, each on every core: ``gzip_writer``
    compresses blocks of a layer side by side, so a big layer does not leave a
    core idle once the small ones are done."""
    if not layers:
        return {}
    unique = {layer.digest: layer for layer in layers}
    started = time.monotonic()
    done = {digest: gzip_to_file(layer, scratch) for digest, layer in unique.items()}
    seconds = max(time.monotonic() - started, 1e-6)
    total = sum(layer.size for layer in unique.values()) / (1 << 20)
    log.info(
        "gzipped %d layer(s): %.1f MiB in %.2f s (%.0f MiB/s, %s)",
        len(unique),
        total,
        seconds,
        total / seconds,
        gzip_backend(),
    )
    return done


def gzip_to_file(source: BlobSource, scratch: Path) -> FileSection:
    """Compress an uncompressed layer into ``scratch`` in one pass, hashing the
    input (it must match its diff_id: every blob read is verified) and the output.

    Three things run side by side: this thread reads and hashes the input, the
    gzip writer's workers deflate blocks, and its output thread writes and hashes
    what they give."""
    fd, name = tempfile.mkstemp(dir=scratch, suffix=".gz")
    path = Path(name)
    # a buffer as big as a block: a stored block's 64 KiB pieces go out in MiB writes
    hasher = HashingWriter(os.fdopen(fd, "wb", buffering=GZIP_BLOCK))
    # Unbuffered: the gzip writer reads whole blocks into buffers of its own.
    reader = VerifyingReader(source.open(), source.digest, source.size, "layer")
    try:
        with reader, hasher, BlockGzipWriter(hasher) as gz:  # type: ignore[arg-type]
            gz.write_from(reader)
    except (OSError, ImageError) as e:
        path.unlink(missing_ok=True)
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"compressing layer {source.digest}: {e}") from e
    log.debug("gzipped layer %s: %d -> %d bytes", source.digest, source.size, hasher.size)
    return FileSection(path, 0, hasher.size, hasher.digest)
