"""Layer compression: sniffing it, undoing it, and gzip when a layer has none.

python-isal does gzip several times faster than zlib at the same format; it is
used when installed, with the standard library as the fallback.
"""

from __future__ import annotations

import gzip
import io
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

try:  # pragma: no cover - which branch runs depends on the machine
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover
    _fast_gzip = None

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: isal's level 1 is about 10-20 times zlib's level 6, at a ratio near zlib's 1-2.
GZIP_LEVEL = 1
READ_AHEAD_CHUNK = 1 << 20
#: chunks decompressed ahead of the reader: enough to ride out a slow file write
READ_AHEAD_DEPTH = 4
#: seconds close() waits for a read-ahead thread blocked in its source (a slow
#: download): it ends on its own once the download moves or is cancelled
READ_AHEAD_JOIN = 1.0


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


def gzip_writer(target: BinaryIO, level: int = GZIP_LEVEL) -> BinaryIO:
    """A gzip stream into ``target`` with a fixed header (no name, mtime 0), so the
    same input always gives the same bytes and digest."""
    if _fast_gzip is not None:
        return _fast_gzip.IGzipFile(fileobj=target, mode="wb", compresslevel=level, mtime=0)  # type: ignore[return-value]
    return gzip.GzipFile(fileobj=target, mode="wb", compresslevel=level, mtime=0, filename="")  # type: ignore[return-value]


def gzip_backend() -> str:
    return "isal" if _fast_gzip is not None else f"zlib {zlib.ZLIB_VERSION}"


class ReadAhead(io.RawIOBase):
    """Runs ``read(CHUNK)`` on a thread of its own until it returns ``b""``, then
    ``finish()``, and serves the chunks in order from a bounded queue.

    The decompressors (isal, zlib, zstandard) release the GIL, so decompressing
    here while the caller writes files uses two cores, as ``tar -xzf`` does with
    its gzip process; the queue keeps memory flat (``depth`` chunks). An error in
    the thread is raised to the reader, in order, after the chunks before it.
    Close it to stop the thread early.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        finish: Callable[[], None] | None = None,
        *,
        chunk: int = READ_AHEAD_CHUNK,
        depth: int = READ_AHEAD_DEPTH,
        name: str = "read-ahead",
    ) -> None:
        super().__init__()
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._view = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(
            target=self._run, args=(read, finish, chunk), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, read: Callable[[int], bytes], finish: Callable[[], None] | None, n: int) -> None:
        item: bytes | BaseException | None = None
        try:
            while True:
                if self._stop.is_set():
                    return
                data = read(n)
                if not data:
                    break
                self._put(data)
            if finish is not None:
                finish()
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            item = e
        self._put(item)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = self._view
        if not view:
            if self._eof:
                return 0
            item = self._queue.get()
            if item is None:
                self._eof = True
                self._thread.join()
                return 0
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            view = memoryview(item)
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        self._view = view[n:]
        return n

    def close(self) -> None:
        """Stop the thread (it ends after the read it is in) and drop what is queued."""
        if not self.closed:
            self._stop.set()
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=READ_AHEAD_JOIN)
        super().close()
