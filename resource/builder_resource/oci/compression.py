"""Which compression a layer has, and undoing it.

Media types lie (BuildKit labels zstd layers with Docker's gzip type), so the
first bytes decide. python-isal reads gzip several times faster than zlib; it is
used when installed, with the standard library as the fallback.
"""

from __future__ import annotations

import gzip
import io
from typing import BinaryIO

try:  # pragma: no cover - which branch runs depends on the machine
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover
    _fast_gzip = None

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff(head: bytes) -> str:
    """'gzip', 'zstd' or 'none', from a blob's first bytes (media types lie:
    BuildKit labels zstd layers with Docker's gzip type)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompressing_reader(raw: BinaryIO) -> BinaryIO:
    """A stream of the uncompressed bytes of ``raw``, whatever its compression."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, 1 << 20)  # type: ignore[arg-type]
    kind = sniff(buffered.peek(4)[:4])
    if kind == "gzip":
        if _fast_gzip is not None:
            return _fast_gzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(buffered, read_size=1 << 20)  # type: ignore[return-value]
    return buffered  # type: ignore[return-value]
