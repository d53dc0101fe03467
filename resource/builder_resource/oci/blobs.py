"""Where the bytes of a blob can be read from, before it is in a store.

A blob in an image archive is a byte range of the archive file; copying it out
first would double the I/O, so a :class:`FileSection` reads it in place.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from .digest import sha256_digest


class BlobSource(Protocol):
    """Content whose digest and size are known before it is read."""

    digest: str
    size: int

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class BytesBlob:
    """A small blob held in memory: manifests, configs, indexes."""

    data: bytes
    digest: str = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", sha256_digest(self.data))
        object.__setattr__(self, "size", len(self.data))

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class FileSection:
    """``size`` bytes of ``path`` from ``offset``: a member of a tar, or a whole file."""

    path: Path
    offset: int
    size: int
    digest: str

    def open(self) -> BinaryIO:
        return SectionReader(self.path, self.offset, self.size)


_PREADV = hasattr(os, "preadv")


class SectionReader(io.RawIOBase):
    """A read-only stream over part of a file, using pread so that several readers
    may share nothing but the path."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._start = offset
        self._end = offset + size
        self._pos = offset

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        """Straight into ``buffer`` (``preadv``): no bytes object and no copy, for
        readers that reuse their buffers (the gzip writer's MiB blocks)."""
        with memoryview(buffer) as view:
            want = min(view.nbytes, self._end - self._pos)
            if want <= 0:
                return 0
            if _PREADV:
                n = os.preadv(self._fd, [view[:want]], self._pos)
            else:  # pragma: no cover - platforms without preadv
                data = os.pread(self._fd, want, self._pos)
                n = len(data)
                view[:n] = data
        self._pos += n
        return n

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}[whence]
        self._pos = max(self._start, min(self._end, base + offset))
        return self._pos - self._start

    def tell(self) -> int:
        return self._pos - self._start

    def __len__(self) -> int:
        return self._end - self._start

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_section(source: BlobSource) -> BinaryIO:
    """Open a blob source with a buffered reader on top."""
    raw = source.open()
    if isinstance(raw, io.RawIOBase):
        return io.BufferedReader(raw, buffer_size=1 << 20)  # type: ignore[return-value]
    return raw
