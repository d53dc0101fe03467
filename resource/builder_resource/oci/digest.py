"""sha256 digests, and a reader that verifies content against one as it streams."""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO

from ..errors import DigestMismatchError, ImageError
from .references import is_digest

CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Return the digest if it is a well-formed sha256 digest; refuse anything else,
    since digests become file names."""
    if not is_digest(digest):
        raise ImageError(f"unsupported or malformed digest {digest!r} (want sha256:<64 hex>)")
    return digest


def hex_of(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]


def verify_bytes(data: bytes, digest: str, what: str = "content") -> bytes:
    actual = sha256_digest(data)
    if actual != digest:
        raise DigestMismatchError(f"{what}: expected {digest}, got {actual}")
    return data


class VerifyingReader(io.RawIOBase):
    """Wraps a stream and checks, when it reaches EOF, that exactly ``size`` bytes
    hashing to ``digest`` went through. A mismatch raises instead of returning EOF,
    so a consumer that reads to the end never takes bad data for good. A raw
    stream, so ``io.BufferedReader`` (and the decompressors on top) can wrap it."""

    def __init__(self, raw: BinaryIO, digest: str, size: int | None, what: str = "blob") -> None:
        super().__init__()
        self._raw = raw
        self._digest = check_digest(digest)
        self._size = size
        self._what = what
        self._hash = hashlib.sha256()
        self._seen = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
        if self._done:
            return b""
        data = self._raw.read() if n is None or n < 0 else self._raw.read(n)
        if data:
            self._seen += len(data)
            if self._size is not None and self._seen > self._size:
                raise DigestMismatchError(
                    f"{self._what} {self._digest}: more than the expected {self._size} bytes"
                )
            self._hash.update(data)
            if n is None or n < 0:
                self._finish()
            return data
        self._finish()
        return b""

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read straight into ``buffer`` (no copy) when the stream can."""
        readinto = getattr(self._raw, "readinto", None)
        if readinto is None:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        if self._done:
            return 0
        n = readinto(buffer)
        if not n:
            self._finish()
            return 0
        self._seen += n
        if self._size is not None and self._seen > self._size:
            raise DigestMismatchError(
                f"{self._what} {self._digest}: more than the expected {self._size} bytes"
            )
        with memoryview(buffer) as view:
            self._hash.update(view[:n])
        return n

    def drain(self) -> None:
        """Read what is left, so that the check runs."""
        while self.read(CHUNK):
            pass

    def _finish(self) -> None:
        self._done = True
        if self._size is not None and self._seen != self._size:
            raise DigestMismatchError(
                f"{self._what} {self._digest}: got {self._seen} bytes, expected {self._size}"
            )
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._digest:
            raise DigestMismatchError(f"{self._what}: expected {self._digest}, got {actual}")

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class HashingWriter:
    """A write-only stream that hashes and counts what goes through it to ``target``."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        self._target.close()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._target.close()
