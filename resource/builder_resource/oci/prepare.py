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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError
from . import media_types as mt
from .archive_read import ArchiveImage
from .blobs import BlobSource, FileSection, open_section
from .compression import gzip_backend, gzip_writer
from .descriptor import Descriptor
from .digest import CHUNK, HashingWriter, VerifyingReader, sha256_digest
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
    """Gzip layers side by side: isal and hashlib release the GIL, so each core
    compresses one layer."""
    if not layers:
        return {}
    unique = {layer.digest: layer for layer in layers}
    started = time.monotonic()
    workers = max(1, min(len(unique), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
        done = dict(
            zip(unique, pool.map(lambda s: gzip_to_file(s, scratch), unique.values()), strict=True)
        )
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
    input (it must match its diff_id: every blob read is verified) and the output."""
    fd, name = tempfile.mkstemp(dir=scratch, suffix=".gz")
    path = Path(name)
    hasher = HashingWriter(os.fdopen(fd, "wb"))
    reader = VerifyingReader(open_section(source), source.digest, source.size, "layer")
    try:
        with reader, hasher, gzip_writer(hasher) as gz:  # type: ignore[arg-type]
            while chunk := reader.read(CHUNK):
                gz.write(chunk)
    except (OSError, ImageError) as e:
        path.unlink(missing_ok=True)
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"compressing layer {source.digest}: {e}") from e
    log.debug("gzipped layer %s: %d -> %d bytes", source.digest, source.size, hasher.size)
    return FileSection(path, 0, hasher.size, hasher.digest)
