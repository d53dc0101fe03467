"""gzip for layers that have none: in blocks compressed side by side on every
core (:class:`BlockGzipWriter`), with bytes that depend on the input alone.

python-isal does gzip several times faster than zlib at the same format; it is
used when installed, with the standard library as the fallback.
"""

from __future__ import annotations

import io
import os
import queue
import struct
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, NamedTuple

try:  # pragma: no cover - which branch runs depends on the machine
    from isal import isal_zlib as _fast_zlib
except ImportError:  # pragma: no cover
    _fast_zlib = None

#: isal's level 1 is about 10-20 times zlib's level 6, at a ratio near zlib's 1-2.
GZIP_LEVEL = 1


def gzip_writer(
    target: BinaryIO, level: int = GZIP_LEVEL, *, workers: int | None = None
) -> BinaryIO:
    """A gzip stream into ``target`` whose bytes depend on the input alone (see
    ``BlockGzipWriter``): the same input always gives the same digest."""
    return BlockGzipWriter(target, level, workers=workers)  # type: ignore[return-value]


def gzip_backend() -> str:
    return "isal" if _fast_zlib is not None else f"zlib {zlib.ZLIB_VERSION}"


#: the unit of parallel work; the output depends on it, so it is a constant
GZIP_BLOCK = 1 << 20
#: the previous block's tail each block is compressed against (deflate's window)
DEFLATE_WINDOW = 1 << 15
#: no name, mtime 0, no extra flags, OS "unknown": the same header on every run
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: an empty final stored block, after the last block's sync flush
DEFLATE_END = b"\x03\x00"
#: a block is stored, not deflated, when each of this many samples spread over
#: it, of SAMPLE bytes, deflates to more than STORE_ABOVE of its size: already
#: compressed content (which deflate cannot shrink, at a cost of ~1 ms a MiB)
SAMPLES = 4
SAMPLE = 8 << 10
STORE_ABOVE = 0.99
#: the largest stored deflate block
STORED_MAX = 0xFFFF


def _lib() -> Any:
    return _fast_zlib if _fast_zlib is not None else zlib


def incompressible(data: Any) -> bool:
    """Whether ``data`` looks like compressed content: SAMPLES samples spread over
    it all deflate to more than STORE_ABOVE of their size (a test that costs a
    few percent of deflating the whole, and depends on the bytes alone)."""
    size = len(data)
    if size < SAMPLES * SAMPLE * 2:
        return False
    lib, step, limit = _lib(), size // SAMPLES, SAMPLE * STORE_ABOVE
    return all(
        len(lib.compress(data[i * step : i * step + SAMPLE], 1, -15)) > limit
        for i in range(SAMPLES)
    )


def stored(data: Any) -> list[Any]:
    """``data`` as non-final stored deflate blocks, from and to a byte boundary:
    the pieces to write in turn, views of ``data`` between the block headers (no
    copy, and no new MiB to fault in, for every incompressible block)."""
    view = memoryview(data)
    parts: list[Any] = []
    for start in range(0, len(view), STORED_MAX):
        chunk = view[start : start + STORED_MAX]
        parts.append(struct.pack("<BHH", 0, len(chunk), len(chunk) ^ 0xFFFF))
        parts.append(chunk)
    return parts


class _Deflater:
    """Compresses one block against the previous block's tail, ending on a byte
    boundary (a sync flush), and gives its crc32. Not thread-safe: one a thread."""

    def __init__(self, level: int, block: int) -> None:
        self._level = level
        self._parallel: Any = None
        if _fast_zlib is not None and hasattr(_fast_zlib, "_ParallelCompress"):
            # isal's own block compressor (igzip_threaded's): a reusable stream and
            # output buffer, the crc in the same call, the GIL released throughout.
            # Level 0 never stores, so its worst case is larger.
            room = block + 500 if level == 0 else max(block // 10, 500)
            self._parallel = _fast_zlib._ParallelCompress(buffersize=block + room, level=level)

    def __call__(self, data: Any, zdict: bytes) -> tuple[bytes | list[Any], int]:
        lib = _lib()
        if self._level > 0 and incompressible(data):
            return stored(data), lib.crc32(data)
        if self._parallel is not None:
            return self._parallel.compress_and_crc(data, zdict)  # type: ignore[no-any-return]
        if zdict:
            c = lib.compressobj(self._level, lib.DEFLATED, -15, zdict=zdict)
        else:
            c = lib.compressobj(self._level, lib.DEFLATED, -15)
        return c.compress(data) + c.flush(lib.Z_SYNC_FLUSH), lib.crc32(data)


_deflaters = threading.local()


def _deflate(level: int, block: int, data: Any, zdict: bytes) -> tuple[bytes | list[Any], int]:
    """Deflate a block on a pool thread, with that thread's deflater."""
    key = (level, block, _fast_zlib is not None)
    cache = getattr(_deflaters, "cache", None)
    if cache is None:
        cache = _deflaters.cache = {}
    deflater = cache.get(key)
    if deflater is None:
        deflater = cache[key] = _Deflater(level, block)
    return deflater(data, zdict)


_shared_lock = threading.Lock()
_shared: ThreadPoolExecutor | None = None
#: block buffers a finished stream left, for the next one (no new memory to fault in)
_spare_buffers: list[bytearray] = []
_SPARE_BUFFERS = (os.cpu_count() or 1) + 4


def _shared_pool() -> ThreadPoolExecutor:
    """One pool of a thread a core for every gzip stream of the process: its
    threads, and their deflaters and memory, are made once, not once a layer."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="gzip")
        return _shared


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The crc32 of A+B from those of A and B and the length of B (zlib's
    ``crc32_combine``, which Python's zlib does not expose; isal's when present)."""
    if _fast_zlib is not None:
        return _fast_zlib.crc32_combine(crc1, crc2, length2)  # type: ignore[no-any-return]
    if length2 <= 0:
        return crc1

    # multiply crc1 by x^(8*length2) modulo the crc polynomial (reflected), by
    # squaring the one-zero-bit operator
    def times(matrix: list[int], vector: int) -> int:
        total, i = 0, 0
        while vector:
            if vector & 1:
                total ^= matrix[i]
            vector >>= 1
            i += 1
        return total

    def square(matrix: list[int]) -> list[int]:
        return [times(matrix, row) for row in matrix]

    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = square(odd)  # two zero bits
    odd = square(even)  # four
    while True:
        even = square(odd)  # the first pass: one zero byte
        if length2 & 1:
            crc1 = times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = square(even)
        if length2 & 1:
            crc1 = times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


class BlockGzipWriter(io.RawIOBase):
    """A gzip writer that compresses on every core, pigz style, with output that
    depends on the input bytes alone.

    The input is cut into ``GZIP_BLOCK`` blocks at fixed offsets, whatever the
    sizes of the writes. Each block is deflated on its own, against the previous
    block's last 32 KiB as a dictionary (so the ratio stays that of one stream),
    and ends on a sync flush; the blocks are written in order after a fixed
    header, then an empty final block and the crc32 and size. That is one plain
    gzip member (gzip, zlib, Go's compress/gzip read it), and the same bytes
    whatever the number of workers or their timing.

    A block that looks incompressible (``incompressible``: already compressed
    content) is stored rather than deflated, which costs a copy instead of ~1 ms
    a MiB; the choice depends on the block's bytes alone.

    The blocks are compressed on a pool of threads (the compressors release the
    GIL): ``workers`` of its own, or by default one pool of a thread a core that
    every stream of the process shares. One more thread writes the blocks, in
    order, into ``target``, so a ``target`` that hashes what it is given hashes
    on a core of its own while the caller (which may hash its input) produces
    the next blocks. At most ``workers + 2`` blocks wait for the output thread.
    ``write_from`` reads a stream into a few reused buffers (no allocation, no
    copy a block).

    An error in a thread is raised by the next ``write`` or by ``close``.
    ``flush`` does not cut a block (that would make the bytes depend on when it
    is called); ``close`` finishes the stream but leaves ``target`` open.
    """

    def __init__(
        self,
        target: BinaryIO,
        level: int = GZIP_LEVEL,
        *,
        workers: int | None = None,
        block: int = GZIP_BLOCK,
    ) -> None:
        super().__init__()
        if block < DEFLATE_WINDOW:
            raise ValueError(f"block of {block} bytes: at least {DEFLATE_WINDOW}")
        self._target = target
        self._block = block
        self._level = level
        if workers is None:
            count, self._own_pool = os.cpu_count() or 1, False
            self._pool = _shared_pool()
        else:
            count, self._own_pool = max(1, workers), True
            self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="gzip")
        self._queue: queue.Queue[_Item | None] = queue.Queue(count + 2)
        # the buffers write_from reads into: those queued, the one the output
        # thread holds, the one being filled
        self._spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._buffers = count + 4
        self._made = 0
        self._pending = bytearray()
        self._tail = b""
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._crc = 0
        self._size = 0
        target.write(GZIP_HEADER)
        self._writer = threading.Thread(target=self._write_out, name="gzip-out", daemon=True)
        self._writer.start()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        self._check_open()
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        if not self._pending and n == self._block and isinstance(data, bytes):
            self._submit(data, n, None)  # whole immutable blocks: no copy
            return n
        self._pending += data
        if len(self._pending) >= self._block:
            view = memoryview(self._pending)
            start = 0
            while len(view) - start >= self._block:
                self._submit(bytes(view[start : start + self._block]), self._block, None)
                start += self._block
            view.release()
            del self._pending[:start]
        return n

    def write_from(self, source: Any) -> int:
        """Compress everything ``source.readinto`` gives until it returns 0 (the
        same bytes as ``write`` would make of it); the number of bytes read."""
        self._check_open()
        total = 0
        while True:
            buffer = self._take_buffer()
            view = memoryview(buffer)
            filled = len(self._pending)
            view[:filled] = self._pending
            self._pending = bytearray()
            while filled < self._block:
                n = source.readinto(view[filled:])
                if not n:
                    break
                filled += n
                total += n
            if filled == self._block:
                self._submit(view, filled, buffer)
                continue
            self._pending = bytearray(view[:filled])  # the end: close() sends it
            view.release()
            self._spare.put(buffer)
            return total

    def flush(self) -> None:
        self._raise_error()

    def close(self) -> None:
        """Compress what is left, wait for the writes, and end the stream."""
        if self.closed:
            return
        try:
            if self._error is None and self._pending:
                self._submit(bytes(self._pending), len(self._pending), None)
            self._pending = bytearray()
            self._queue.put(None)
            self._writer.join()
            self._raise_error()
            self._target.write(DEFLATE_END + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        finally:
            self._shutdown()
            super().close()

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is None:
            self.close()
        else:  # the caller failed: stop without finishing the stream
            self._shutdown()
            super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("write to a closed gzip stream")
        self._raise_error()

    def _take_buffer(self) -> bytearray:
        try:
            return self._spare.get_nowait()
        except queue.Empty:
            pass
        if self._made < self._buffers:
            self._made += 1
            with _shared_lock:
                if self._block == GZIP_BLOCK and _spare_buffers:
                    return _spare_buffers.pop()
            return bytearray(self._block)
        while True:  # all in flight: wait for the output thread to give one back
            try:
                return self._spare.get(timeout=0.1)
            except queue.Empty:
                self._raise_error()

    def _submit(self, data: Any, length: int, buffer: bytearray | None) -> None:
        zdict = self._tail
        self._tail = (
            bytes(data[length - DEFLATE_WINDOW : length]) if length >= DEFLATE_WINDOW else b""
        )
        future = self._pool.submit(_deflate, self._level, self._block, data, zdict)
        item = _Item(future, length, buffer)
        while True:  # wait for room, unless the output thread has stopped
            if self._abort.is_set():
                future.cancel()
                self._raise_error()
                return
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _write_out(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                compressed, crc = item.future.result()
                if isinstance(compressed, list):  # stored: views of the input
                    for part in compressed:
                        self._target.write(part)
                else:
                    self._target.write(compressed)
                del compressed
                if item.buffer is not None:  # written: the buffer may be refilled
                    self._spare.put(item.buffer)
                self._crc = crc32_combine(self._crc, crc, item.length)
                self._size += item.length
        except BaseException as e:  # noqa: BLE001 - raised by the producer
            self._error = e
            self._abort.set()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _shutdown(self) -> None:
        self._abort.set()
        try:  # unblock the output thread if it waits for a block that will not come
            while True:
                item = self._queue.get_nowait()
                if item is not None:
                    item.future.cancel()
        except queue.Empty:
            pass
        self._queue.put(None)
        self._writer.join()
        if self._own_pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
        # the buffers the output thread gave back are free: the next stream reuses them
        with _shared_lock:
            while len(_spare_buffers) < _SPARE_BUFFERS:
                try:
                    buffer = self._spare.get_nowait()
                except queue.Empty:
                    break
                if len(buffer) == GZIP_BLOCK:
                    _spare_buffers.append(buffer)


class _Item(NamedTuple):
    future: Future[tuple[bytes | list[Any], int]]
    length: int
    buffer: bytearray | None
