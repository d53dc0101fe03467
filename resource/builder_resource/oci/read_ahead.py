"""Reading ahead on a thread of its own, so that decompressing a layer and
writing its files use two cores, as ``tar -xzf`` does with its gzip child."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable
from typing import Any

READ_AHEAD_CHUNK = 1 << 20
#: chunks decompressed ahead of the reader: enough to ride out a slow file write
READ_AHEAD_DEPTH = 4
#: seconds close() waits for a read-ahead thread blocked in its source (a slow
#: download): it ends on its own once the download moves or is cancelled
READ_AHEAD_JOIN = 1.0


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
