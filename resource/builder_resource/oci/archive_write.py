"""Writing an image out of a store, in the format a downstream tool wants.

- ``docker``: the dual tarball (OCI layout plus Docker's ``manifest.json``) that
  ``docker load``, ``skopeo`` (``docker-archive:`` and ``oci-archive:``) and
  registry-image's put all read, with every blob as stored: no recompression, so
  the image keeps its digest;
- ``oci``: an oci-archive (the same without ``manifest.json``);
- ``oci-layout``: the layout as a directory.

Archives are deterministic: sorted members, owner 0:0, mtime 0. The layout of an
archive is planned from the manifest before any blob is read (:func:`plan_image`),
so blobs may be written into it in any order, side by side, with the same bytes.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import DigestMismatchError
from . import media_types as mt
from .descriptor import Descriptor, canonical_json
from .digest import CHUNK, hex_of
from .manifest import ImageManifest

OpenBlob = Callable[[Descriptor], AbstractContextManager[BinaryIO]]
FORMATS = ("docker", "oci", "oci-layout")
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
BLOCK = tarfile.BLOCKSIZE


def write_image(
    destination: Path,
    fmt: str,
    manifest: ImageManifest,
    open_blob: OpenBlob,
    repo_tags: tuple[str, ...] = (),
) -> None:
    """Write the image ``manifest`` to ``destination`` (a file, or a directory for
    ``oci-layout``), reading its blobs one after another through ``open_blob``."""
    planned = plan_image(destination, fmt, manifest, repo_tags)
    planned.create()
    for slot in planned.slots:
        with open_blob(slot.descriptor) as reader:
            write_slot(slot, reader)


@dataclass(frozen=True)
class BlobSlot:
    """Where one blob's bytes go: ``descriptor.size`` bytes of ``path`` from ``offset``."""

    descriptor: Descriptor
    path: Path
    offset: int


@dataclass
class PlannedImage:
    """An image archive laid out before any blob is read.

    Every member's place follows from the manifest alone (descriptors carry
    sizes), so :meth:`create` writes everything but the blobs (headers, small
    files, the end of the archive) and each blob then goes to its
    :class:`BlobSlot`, in any order and from any thread, without changing a byte
    of the result. That lets blobs download side by side and a reader follow one
    as it arrives; the bytes are those ``tarfile`` writes in stream mode.
    """

    destination: Path
    fmt: str
    #: small files: (path, offset, bytes); tar headers, padding and the end count as such
    pieces: list[tuple[Path, int, bytes]]
    slots: list[BlobSlot]
    #: the archive's size (``None`` for a directory)
    size: int | None

    def create(self) -> None:
        """Write everything but the blobs; blob files exist (empty) afterwards."""
        if self.size is None:
            (self.destination / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            for path, _, data in self.pieces:
                path.write_bytes(data)
            for slot in self.slots:
                open(slot.path, "wb").close()
            return
        fd = os.open(self.destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            os.ftruncate(fd, self.size)
            for _, offset, data in self.pieces:
                _pwrite_all(fd, data, offset)
        finally:
            os.close(fd)

    def slot(self, digest: str) -> BlobSlot:
        for slot in self.slots:
            if slot.descriptor.digest == digest:
                return slot
        raise KeyError(digest)


def plan_image(
    destination: Path, fmt: str, manifest: ImageManifest, repo_tags: tuple[str, ...] = ()
) -> PlannedImage:
    """Lay out the image ``manifest`` as ``fmt`` at ``destination`` (see PlannedImage)."""
    descriptor = Descriptor(manifest.media_type, _digest(manifest.raw), len(manifest.raw))
    docker_manifest = json.dumps(
        [
            {
                "Config": _blob_path(manifest.config.digest),
                "RepoTags": list(repo_tags),
                "Layers": [_blob_path(d.digest) for d in manifest.layers],
            }
        ],
        separators=(",", ":"),
    ).encode()
    small = {descriptor.digest: manifest.raw}
    blobs = [manifest.config, *manifest.layers]
    return _plan(destination, fmt, descriptor, small, blobs, repo_tags, docker_manifest)


def plan_index(
    destination: Path,
    fmt: str,
    index: Descriptor,
    raw: bytes,
    manifests: Sequence[ImageManifest],
    repo_tags: tuple[str, ...] = (),
) -> PlannedImage:
    """Lay out a multi-platform image whole, as ``oci`` or ``oci-layout``:
    ``index.json`` names the index (as ``buildah manifest push --all`` writes
    it), whose bytes and every manifest it lists are blobs beside their own.
    A docker-archive holds one image: write one platform with :func:`plan_image`."""
    if fmt == "docker":
        raise ValueError("a docker-archive holds one platform's image, not an index")
    small = {index.digest: raw, **{_digest(m.raw): m.raw for m in manifests}}
    blobs = [blob for m in manifests for blob in (m.config, *m.layers)]
    top = Descriptor(index.media_type, index.digest, index.size)
    return _plan(destination, fmt, top, small, blobs, repo_tags, None)


def _plan(
    destination: Path,
    fmt: str,
    top: Descriptor,
    small: dict[str, bytes],
    blobs: list[Descriptor],
    repo_tags: tuple[str, ...],
    docker_manifest: bytes | None,
) -> PlannedImage:
    """``top`` is what ``index.json`` names; ``small`` the manifests written with
    the plan, by digest; ``blobs`` those that get slots, to be filled later."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}")
    destination = Path(destination)
    entry = top.to_json()
    if repo_tags:
        entry["annotations"] = {REF_NAME: repo_tags[0]}
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]})
    if fmt == "oci-layout":
        pieces = [(destination / _blob_path(d), 0, raw) for d, raw in small.items()]
        pieces += [(destination / "index.json", 0, index), (destination / "oci-layout", 0, LAYOUT)]
        slots = [
            BlobSlot(d, destination / _blob_path(d.digest), 0)
            for d in _unique(blobs)
            if d.digest not in small
        ]
        return PlannedImage(destination, fmt, pieces, slots, None)
    members: list[tuple[tarfile.TarInfo, bytes | Descriptor]] = [
        (_info("blobs", 0, 0o755, tarfile.DIRTYPE), b""),
        (_info("blobs/sha256", 0, 0o755, tarfile.DIRTYPE), b""),
    ]
    everything: list[tuple[str, Descriptor | bytes]] = [
        (_blob_path(d), raw) for d, raw in small.items()
    ]
    everything += [(_blob_path(d.digest), d) for d in _unique(blobs) if d.digest not in small]
    for name, item in sorted(everything, key=lambda pair: pair[0]):
        size = len(item) if isinstance(item, bytes) else item.size
        members.append((_info(name, size, 0o444), item))
    members.append((_info("index.json", len(index), 0o644), index))
    if fmt == "docker" and docker_manifest is not None:
        members.append((_info("manifest.json", len(docker_manifest), 0o644), docker_manifest))
    members.append((_info("oci-layout", len(LAYOUT), 0o644), LAYOUT))

    pieces = []
    slots = []
    offset = 0
    for info, item in members:
        header = info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
        pieces.append((destination, offset, header))
        offset += len(header)
        if isinstance(item, bytes):
            pieces.append((destination, offset, item + bytes(-len(item) % BLOCK)))
        else:
            slots.append(BlobSlot(item, destination, offset))
            pieces.append((destination, offset + item.size, bytes(-item.size % BLOCK)))
        offset += info.size + -info.size % BLOCK
    end = offset + 2 * BLOCK  # two zero blocks, then zeros up to a whole record
    size = end + -end % tarfile.RECORDSIZE
    pieces.append((destination, offset, bytes(size - offset)))
    return PlannedImage(destination, fmt, [p for p in pieces if p[2]], slots, size)


def write_slot(slot: BlobSlot, reader: BinaryIO) -> None:
    """Copy the blob from ``reader`` into its slot, then read on to EOF: a verifying
    reader checks the digest there, and a blob longer than its descriptor says fails."""
    size = slot.descriptor.size
    with open(slot.path, "r+b", buffering=0) as out:
        out.seek(slot.offset)
        left = size
        while left:
            chunk = reader.read(min(left, CHUNK))
            if not chunk:
                raise DigestMismatchError(
                    f"blob {slot.descriptor.digest}: shorter than {size} bytes"
                )
            out.write(chunk)
            left -= len(chunk)
    _expect_eof(reader, slot.descriptor)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _digest(raw: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def _unique(blobs: list[Descriptor]) -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}
    for d in blobs:
        seen.setdefault(d.digest, d)
    return sorted(seen.values(), key=lambda d: d.digest)


def _expect_eof(reader: BinaryIO, descriptor: Descriptor) -> None:
    """Reading on to EOF makes a verifying reader check the digest, and catches a
    blob longer than its descriptor says."""
    if reader.read(1):
        raise DigestMismatchError(f"blob {descriptor.digest}: longer than {descriptor.size} bytes")


def _info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.type = kind
    info.mtime = 0
    return info
