"""Moving the blobs of one version: a small bounded pool of threads, and
downloads that others read while they arrive.

Three workers, as Docker's default for downloads: a loopback registry is bound by
its own CPU, a remote one by latency, and either gains little from more.

For get, :func:`fetch_in_background` downloads each blob once, straight into its
place in the output (a :class:`Filling`), while other code reads it as it
arrives: the image tarball and the rootfs come from the same bytes.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ..errors import StoreError
from ..oci.blobs import BlobSource, SectionReader
from ..oci.digest import CHUNK, VerifyingReader
from .base import Store

log = logging.getLogger("builder_resource.store")

T = TypeVar("T")
WORKERS = 3


def parallel(
    tasks: Iterable[Callable[[], T]], workers: int = WORKERS, name: str = "transfer"
) -> list[T]:
    """Run ``tasks`` on at most ``workers`` threads (named ``name``); results in
    task order. On a failure the tasks not yet started never start, the running
    ones end, and the first failure in task order is raised."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix=name)
    try:
        futures = [pool.submit(task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        # After a failure (or an interrupt) what has not started is dropped; what
        # runs is waited for, so no thread outlives the call.
        pool.shutdown(wait=True, cancel_futures=True)
    # Tasks start in order, so a cancelled one comes after every failed one: this
    # raises the first failure in task order, never a CancelledError.
    return [future.result() for future in futures]


def parallel_push(store: Store, blobs: Iterable[BlobSource], workers: int = WORKERS) -> int:
    """Push every distinct blob, the largest first so the long transfers overlap
    the many small ones. Returns how many distinct blobs there were."""
    unique: dict[str, BlobSource] = {}
    for blob in blobs:
        unique.setdefault(blob.digest, blob)
    ordered = sorted(unique.values(), key=lambda b: b.size, reverse=True)
    parallel([lambda b=b: store.push_blob(b) for b in ordered], workers)
    return len(ordered)


# --- downloads that others read while they arrive --------------------------------------


class Cancelled(StoreError):
    """A transfer stopped because other work it belonged to failed first."""


class Filling:
    """A blob being downloaded into ``size`` bytes of ``path`` from ``offset``, which
    readers may follow while it arrives (:meth:`open`).

    A reader gets the bytes as they are written, and EOF only once the download
    has ended and the digest was verified; if the download fails, the reader
    raises its error instead. So data from here is never taken for good unless it
    is, exactly as with a store's verifying stream, yet every blob is moved once
    and a consumer can start before the download ends.
    """

    def __init__(self, digest: str, size: int, path: Path, offset: int = 0) -> None:
        self.digest = digest
        self.size = size
        self.path = Path(path)
        self.offset = offset
        self._cond = threading.Condition()
        self._filled = 0
        self._done = False
        self._error: BaseException | None = None

    # the writer's side
    def advance(self, n: int) -> None:
        with self._cond:
            self._filled += n
            self._cond.notify_all()

    def finish(self) -> None:
        """Every byte is in and verified."""
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            if not self._done and self._error is None:
                self._error = error
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self._done

    # the readers' side
    def available(self, position: int) -> int:
        """Wait until there are bytes beyond ``position`` or the blob is complete;
        how many bytes are there. Raises the download's error."""
        with self._cond:
            while self._filled <= position and not self._done and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            return self._filled

    def wait(self) -> None:
        """Until the blob is complete and verified (or its download's error)."""
        self.available(self.size)

    def open(self) -> BinaryIO:
        """A buffered stream of the blob, following the download."""
        return io.BufferedReader(FillingReader(self), CHUNK)  # type: ignore[return-value]

    def read(self) -> bytes:
        """The whole blob, once complete (for small ones: configs)."""
        self.wait()
        with self.open() as f:
            return f.read()


class FillingReader(io.RawIOBase):
    """A raw stream of a :class:`Filling`, read with ``preadv`` into the caller's
    buffer (the page cache holds what was just written)."""

    def __init__(self, filling: Filling) -> None:
        super().__init__()
        self._filling = filling
        self._fd = os.open(filling.path, os.O_RDONLY | os.O_CLOEXEC)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        filling = self._filling
        if self._pos >= filling.size:
            filling.wait()  # EOF only once verified
            return 0
        end = filling.available(self._pos)
        want = min(len(buffer), end - self._pos)
        if want <= 0:  # complete, yet short: cannot be once verified
            raise StoreError(f"blob {filling.digest}: ended after {end} of {filling.size} bytes")
        view = memoryview(buffer).cast("B")[:want]
        n = os.preadv(self._fd, [view], filling.offset + self._pos)
        if n <= 0:
            raise StoreError(f"blob {filling.digest}: {filling.path} is shorter than written")
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def fetch_into(store: Store, filling: Filling, cancel: threading.Event | None = None) -> None:
    """Download ``filling``'s blob, verified, into its place; readers follow it. On
    failure (or ``cancel``, checked between chunks) the filling fails and the
    error is raised."""
    try:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"blob {filling.digest}: not fetched, the work it was for failed")
        fd = os.open(filling.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            with store.open_blob(filling.digest, filling.size) as source:
                position = filling.offset
                # A verifying stream returns EOF only after checking the digest. read,
                # not readinto: the chunk goes to the file without another copy.
                while data := source.read(CHUNK):
                    _pwrite_all(fd, memoryview(data), position)
                    position += len(data)
                    filling.advance(len(data))
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"blob {filling.digest}: fetch stopped, the work failed")
        finally:
            os.close(fd)
        filling.finish()
    except BaseException as e:
        filling.fail(e)
        raise


class BackgroundFetch:
    """Fetches blobs into their :class:`Filling` on a small pool, in the order
    given, while the caller reads them (see :func:`fetch_in_background`)."""

    def __init__(self, store: Store, fillings: Sequence[Filling], workers: int = WORKERS) -> None:
        self._store = store
        self._fillings = list(fillings)
        self._workers = max(1, min(workers, len(self._fillings)))
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.fetched = 0

    def start(self) -> None:
        if not self._fillings:
            return
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fetch")
        for filling in self._fillings:
            self._pool.submit(self._fetch, filling)

    def _fetch(self, filling: Filling) -> None:
        try:
            fetch_into(self._store, filling, self._cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the readers and to finish()
            with self._lock:
                if self._failure is None and not isinstance(e, Cancelled):
                    self._failure = e
            self._cancel.set()
        else:
            with self._lock:
                self.fetched += filling.size

    def finish(self, error: BaseException | None = None) -> None:
        """Wait for every fetch to end. With ``error`` (the caller failed), cancel
        first; without, raise the first fetch failure."""
        if error is not None:
            self._cancel.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=self._cancel.is_set())
        missing = [f for f in self._fillings if not f.done]
        for filling in missing:  # never started: readers must not wait for them
            filling.fail(Cancelled(f"blob {filling.digest}: not fetched"))
        if error is None and self._failure is not None:
            raise self._failure
        if error is None and missing:
            raise Cancelled(f"{len(missing)} blob(s) not fetched: cancelled")

    @property
    def failure(self) -> BaseException | None:
        return self._failure


@contextmanager
def fetch_in_background(
    store: Store, fillings: Sequence[Filling], workers: int = WORKERS
) -> Iterator[BackgroundFetch]:
    """Download ``fillings`` (the order is the order they start in) on ``workers``
    threads while the body reads them. If the body fails, the downloads still
    running stop at their next chunk, those not started never start, and the
    body's error is raised (the download's own error where the body only saw
    that download cancelled). Otherwise the first download failure is raised
    once all have ended."""
    fetch = BackgroundFetch(store, fillings, workers)
    fetch.start()
    try:
        yield fetch
    except BaseException as e:
        fetch.finish(e)
        if isinstance(e, Cancelled) and fetch.failure is not None:
            raise fetch.failure from None
        raise
    fetch.finish()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class ReusingStore:
    """A store for :func:`fetch_in_background` that serves the blobs already fetched
    into local files (:meth:`remember`) from there, hashed again on the way, and
    every other blob from ``store``: images of one version that share layers
    download each shared layer once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._local: dict[str, Filling] = {}

    def remember(self, filling: Filling) -> None:
        """``filling`` is complete and verified: serve its blob from its file."""
        if filling.done:
            self._local.setdefault(filling.digest, filling)

    def has(self, digest: str) -> bool:
        return digest in self._local

    @contextmanager
    def open_blob(self, digest: str, size: int | None = None) -> Iterator[BinaryIO]:
        local = self._local.get(digest)
        if local is None:
            with self._store.open_blob(digest, size) as stream:
                yield stream
            return
        section = SectionReader(local.path, local.offset, local.size)
        try:
            yield VerifyingReader(section, digest, size, what=f"blob copied from {local.path}")  # type: ignore[misc]
        finally:
            section.close()
