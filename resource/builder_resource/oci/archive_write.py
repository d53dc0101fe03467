"""Writing an image out of a store, in the format a downstream tool wants.

- ``docker``: the dual tarball (OCI layout plus Docker's ``manifest.json``) that
  ``docker load``, ``skopeo`` (``docker-archive:`` and ``oci-archive:``) and
  registry-image's put all read, with every blob as stored: no recompression, so
  the image keeps its digest;
- ``oci``: an oci-archive (the same without ``manifest.json``);
- ``oci-layout``: the layout as a directory.

Archives are deterministic: sorted members, owner 0:0, mtime 0.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from contextlib import AbstractContextManager
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


def write_image(
    destination: Path,
    fmt: str,
    manifest: ImageManifest,
    open_blob: OpenBlob,
    repo_tags: tuple[str, ...] = (),
) -> None:
    """Write the image ``manifest`` to ``destination`` (a file, or a directory for
    ``oci-layout``), reading its blobs through ``open_blob``."""
    descriptor = Descriptor(manifest.media_type, _digest(manifest.raw), len(manifest.raw))
    entry = descriptor.to_json()
    if repo_tags:
        entry["annotations"] = {REF_NAME: repo_tags[0]}
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]})
    blobs = [manifest.config, *manifest.layers]
    small = {descriptor.digest: manifest.raw}
    if fmt == "oci-layout":
        _write_directory(destination, index, small, blobs, open_blob)
        return
    docker_manifest = None
    if fmt == "docker":
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
    _write_tar(destination, index, small, blobs, open_blob, docker_manifest)


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


def _write_tar(
    destination: Path,
    index: bytes,
    small: dict[str, bytes],
    blobs: list[Descriptor],
    open_blob: OpenBlob,
    docker_manifest: bytes | None,
) -> None:
    with (
        open(destination, "wb", buffering=CHUNK) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        everything: list[tuple[str, Descriptor | bytes]] = [
            (_blob_path(d), raw) for d, raw in small.items()
        ]
        everything += [(_blob_path(d.digest), d) for d in _unique(blobs) if d.digest not in small]
        for name, item in sorted(everything, key=lambda pair: pair[0]):
            if isinstance(item, bytes):
                _add_bytes(tar, name, item, 0o444)
            else:
                info = _info(name, item.size, 0o444)
                with open_blob(item) as reader:
                    tar.addfile(info, reader)
                    _expect_eof(reader, item)
        _add_bytes(tar, "index.json", index, 0o644)
        if docker_manifest is not None:
            _add_bytes(tar, "manifest.json", docker_manifest, 0o644)
        _add_bytes(tar, "oci-layout", LAYOUT, 0o644)


def _write_directory(
    destination: Path,
    index: bytes,
    small: dict[str, bytes],
    blobs: list[Descriptor],
    open_blob: OpenBlob,
) -> None:
    (destination / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, raw in small.items():
        (destination / _blob_path(digest)).write_bytes(raw)
    for d in _unique(blobs):
        with open_blob(d) as reader, open(destination / _blob_path(d.digest), "wb") as out:
            while chunk := reader.read(CHUNK):
                out.write(chunk)
    (destination / "index.json").write_bytes(index)
    (destination / "oci-layout").write_bytes(LAYOUT)


def _expect_eof(reader: BinaryIO, descriptor: Descriptor) -> None:
    """tarfile copies exactly ``size`` bytes; reading on to EOF makes a verifying
    reader check the digest, and catches a blob longer than its descriptor says."""
    if reader.read(1):
        raise DigestMismatchError(f"blob {descriptor.digest}: longer than {descriptor.size} bytes")


def _info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.type = kind
    info.mtime = 0
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, 0, 0o755, tarfile.DIRTYPE))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    tar.addfile(_info(name, len(data), mode), io.BytesIO(data))
