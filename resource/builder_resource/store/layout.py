"""A store in an OCI image-layout directory (image-spec image-layout.md).

Blobs live in ``blobs/sha256/<hex>``; tags are the ``org.opencontainers.image.ref.name``
annotations of ``index.json``, so ``skopeo``/``umoci`` read the store as
``oci:<dir>:<tag>``. Every write goes to a temporary file first and is renamed into
place; ``index.json`` is updated under a lock, so concurrent puts do not lose tags.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import NotFoundError, StoreError, TagTakenError
from ..oci import media_types as mt
from ..oci.blobs import BlobSource, open_section
from ..oci.descriptor import Descriptor, parse_json
from ..oci.digest import CHUNK, VerifyingReader, hex_of, sha256_digest, verify_bytes
from ..oci.references import is_digest
from ..stale import remove_stale

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


class LayoutStore:
    def __init__(self, directory: str | Path) -> None:
        path = str(directory)
        if path.startswith("file://"):
            path = path[len("file://") :]
        self.root = Path(path)
        if not self.root.is_absolute():
            raise StoreError(f"{path}: a local store must be an absolute path")
        self.location = str(self.root)
        self._swept = False
        existing = self._nearest_existing()
        if not existing.is_dir():
            where = "" if existing == self.root else f" ({existing})"
            raise StoreError(f"{self.location}: not a directory{where}")

    def _nearest_existing(self) -> Path:
        """The store's directory, or the ancestor it would be created under."""
        return next(p for p in (self.root, *self.root.parents) if p.exists())

    # -- blobs ------------------------------------------------------------------
    def _blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / hex_of(digest)

    def blob_exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def push_blob(self, blob: BlobSource) -> None:
        target = self._blob_path(blob.digest)
        if target.is_file():
            return
        self._ensure()
        with open_section(blob) as reader:
            self._write_verified(target, reader, blob.digest, blob.size)

    def _write_verified(self, target: Path, reader: BinaryIO, digest: str, size: int) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            hasher = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    hasher.update(chunk)
                    written += len(chunk)
                    out.write(chunk)
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest or written != size:
                raise StoreError(
                    f"{self.location}: blob {digest} ({size} bytes) arrived as "
                    f"{actual} ({written} bytes)"
                )
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def open_blob(self, digest: str, size: int | None = None) -> Iterator[BinaryIO]:
        try:
            raw = open(self._blob_path(digest), "rb", buffering=CHUNK)  # noqa: SIM115
        except FileNotFoundError:
            raise NotFoundError(f"{self.location}: blob {digest} not found") from None
        with raw:
            yield VerifyingReader(raw, digest, size, what=f"{self.location}: blob")  # type: ignore[misc]

    # -- manifests and tags -----------------------------------------------------
    def push_manifest(self, content: bytes, media_type: str, reference: str) -> str:
        digest = sha256_digest(content)
        if is_digest(reference) and reference != digest:
            raise StoreError(f"{self.location}: manifest pushed as {reference} hashes to {digest}")
        self._ensure()
        target = self._blob_path(digest)
        if not target.is_file():
            import io

            self._write_verified(target, io.BytesIO(content), digest, len(content))  # type: ignore[arg-type]
        if not is_digest(reference):
            self._set_tag(reference, Descriptor(media_type, digest, len(content)))
        return digest

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        if is_digest(reference):
            digest, media_type = reference, None
        else:
            entry = self._tags().get(reference)
            if entry is None:
                raise NotFoundError(f"{self.location}: tag {reference} not found")
            digest, media_type = entry.digest, entry.media_type
        try:
            content = self._blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{self.location}: manifest {digest} not found") from None
        verify_bytes(content, digest, f"{self.location}: manifest")
        if media_type is None:
            data = parse_json(content, f"{self.location}: manifest {digest}")
            media_type = data.get("mediaType") if isinstance(data, dict) else None
            media_type = media_type or mt.OCI_MANIFEST
        return content, media_type

    def resolve_tag(self, tag: str) -> str | None:
        entry = self._tags().get(tag)
        return entry.digest if entry else None

    def list_tags(self) -> list[str]:
        return list(self._tags())

    # -- referrers: untagged entries of index.json, carrying their artifactType ---
    def push_referrer(self, content: bytes, media_type: str) -> str:
        from .referrers import referrer_descriptor, subject_of

        digest = self.push_manifest(content, media_type, sha256_digest(content))
        if subject_of(content) is None:
            raise StoreError(f"{self.location}: referrer {digest} has no subject")
        entry = referrer_descriptor(content, media_type).to_json()
        with self._locked():
            index = self._read_index()
            if not any(_untagged(m) and m.get("digest") == digest for m in index["manifests"]):
                index["manifests"].append(entry)
                self._write_index(index)
        return digest

    def referrers(self, digest: str) -> list[Descriptor]:
        from .referrers import subject_of

        found = []
        for i, item in enumerate(self._read_index()["manifests"]):
            if not _untagged(item) or not item.get("artifactType"):
                continue
            descriptor = Descriptor.from_json(item, f"{self.location}/index.json entry {i}")
            try:
                content, _ = self.get_manifest(descriptor.digest)
            except NotFoundError:
                continue
            if subject_of(content) == digest:
                found.append(descriptor)
        return found

    # -- index.json ---------------------------------------------------------------
    def _ensure(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        if not self._swept:  # once per run: what a killed put left among the blobs
            remove_stale(self.root / "blobs" / "sha256", ".tmp-*")
            self._swept = True
        if not (self.root / "oci-layout").exists():
            _atomic_write(self.root / "oci-layout", LAYOUT)
        if not (self.root / "index.json").exists():
            with self._locked():
                if not (self.root / "index.json").exists():
                    self._write_index(
                        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
                    )

    def _read_index(self) -> dict[str, Any]:
        try:
            data = parse_json(
                (self.root / "index.json").read_bytes(), f"{self.location}/index.json"
            )
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
            raise StoreError(f"{self.location}/index.json: not an OCI index")
        return data

    def _tags(self) -> dict[str, Descriptor]:
        tags: dict[str, Descriptor] = {}
        for i, item in enumerate(self._read_index()["manifests"]):
            descriptor = Descriptor.from_json(item, f"{self.location}/index.json entry {i}")
            name = descriptor.annotations.get(REF_NAME)
            if name:
                tags[name] = descriptor
        return tags

    def check_push(self) -> None:
        if not os.access(self._nearest_existing(), os.W_OK | os.X_OK):
            raise StoreError(f"{self.location}: not writable")

    def tag_once(self, tag: str, content: bytes, media_type: str) -> None:
        digest = self.push_manifest(content, media_type, sha256_digest(content))
        self._set_tag(tag, Descriptor(media_type, digest, len(content)), only_if_free=True)

    def _set_tag(self, tag: str, descriptor: Descriptor, *, only_if_free: bool = False) -> None:
        """Point ``tag`` at ``descriptor``; with ``only_if_free``, refuse a tag that
        points elsewhere, deciding under the lock that every writer takes."""
        with self._locked():
            index = self._read_index()
            held = [
                m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_NAME) == tag
            ]
            if only_if_free and held and held[-1].get("digest") != descriptor.digest:
                raise TagTakenError(self.location, tag, str(held[-1].get("digest")))
            kept = [m for m in index["manifests"] if m not in held]
            entry = descriptor.to_json()
            entry["annotations"] = {REF_NAME: tag}
            index["manifests"] = [*kept, entry]
            self._write_index(index)

    def _write_index(self, index: dict[str, Any]) -> None:
        _atomic_write(self.root / "index.json", json.dumps(index, indent=1).encode())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _untagged(entry: Any) -> bool:
    return isinstance(entry, dict) and REF_NAME not in (entry.get("annotations") or {})


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
