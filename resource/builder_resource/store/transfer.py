"""Moving the blobs of one version: a small bounded pool of threads, and blob
downloads that leave no partial file behind.

Three workers, as Docker's default for downloads: a loopback registry is bound by
its own CPU, a remote one by latency, and either gains little from more.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

from ..oci.blobs import BlobSource
from ..oci.digest import CHUNK
from .base import Store

log = logging.getLogger("builder_resource.store")

T = TypeVar("T")
WORKERS = 3


def parallel(tasks: Iterable[Callable[[], T]], workers: int = WORKERS) -> list[T]:
    """Run ``tasks`` on at most ``workers`` threads; results in task order. On the
    first failure the tasks not yet started are dropped, the running ones end, and
    that failure is raised."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(tasks)), thread_name_prefix="transfer"
    ) as pool:
        futures = [pool.submit(task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next(
            (f for f in futures if f.done() and not f.cancelled() and f.exception()), None
        )
        if failed is not None:
            for future in futures:
                future.cancel()
    if failed is not None:
        raise failed.exception()  # type: ignore[misc]
    return [future.result() for future in futures]


def parallel_push(
    store: Store,
    blobs: Iterable[BlobSource],
    workers: int = WORKERS,
    mount_from: str | None = None,
) -> int:
    """Push every distinct blob, the largest first so the long transfers overlap
    the many small ones. Returns how many distinct blobs there were."""
    unique: dict[str, BlobSource] = {}
    for blob in blobs:
        unique.setdefault(blob.digest, blob)
    ordered = sorted(unique.values(), key=lambda b: b.size, reverse=True)

    def push(blob: BlobSource) -> Callable[[], None]:
        if mount_from is None:
            return lambda: store.push_blob(blob)
        return lambda: store.push_blob(blob, mount_from=mount_from)  # type: ignore[call-arg]

    parallel([push(b) for b in ordered], workers)
    return len(ordered)


def fetch_blob(store: Store, digest: str, size: int | None, dest: Path) -> Path:
    """Download a blob to ``dest``, verified. The bytes go to a temporary name
    beside it and are moved into place only once verified; on any failure
    nothing is left at either name."""
    dest = Path(dest)
    part = dest.with_name(f".{dest.name}.part")
    try:
        with store.open_blob(digest, size) as source, open(part, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)  # type: ignore[misc]
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest


def parallel_fetch(
    store: Store, items: Sequence[tuple[str, int | None, Path]], workers: int = WORKERS
) -> list[Path]:
    """``fetch_blob`` for each ``(digest, size, dest)``, on a small pool."""
    return parallel(
        [lambda d=d, s=s, p=p: fetch_blob(store, d, s, p) for d, s, p in items], workers
    )
