"""Publishing an encoded release: blobs, then manifests, then the index, the tag last.

A version is visible only once complete: if anything fails before the tag is
written, check never sees it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from .oci import media_types as mt
from .oci.blobs import BlobSource
from .oci.digest import sha256_digest
from .release import Encoded
from .store import Store

log = logging.getLogger(__name__)

#: Blobs of one version move a few at a time (Docker pushes 5, pulls 3).
WORKERS = 3


def publish(store: Store, encoded: Encoded, tag: str) -> str:
    """Push everything and tag the index; return the index's digest."""
    push_blobs(store, list(encoded.blobs))
    for content, media_type in encoded.manifests:
        store.push_manifest(content, media_type, sha256_digest(content))
    digest = store.push_manifest(encoded.index, mt.OCI_INDEX, sha256_digest(encoded.index))
    store.push_manifest(encoded.index, mt.OCI_INDEX, tag)
    return digest


def push_blobs(store: Store, blobs: list[BlobSource]) -> None:
    """Push in a small bounded pool, largest first so the long ones start early.
    The first failure is raised once every started transfer has ended."""
    ordered = sorted(blobs, key=lambda b: b.size, reverse=True)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="push") as pool:
        futures = [pool.submit(store.push_blob, blob) for blob in ordered]
    for future in futures:
        future.result()
