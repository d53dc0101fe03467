"""Publishing an encoded release: blobs, then manifests, then the index, the tag last.

A version is visible only once complete: if anything fails before the tag is
written, check never sees it. Of two puts of one version, one tags it; the other
fails (``Store.tag_once``).
"""

from __future__ import annotations

from collections.abc import Callable

from .attest.referrers import Attachments, publish_attachments
from .oci import media_types as mt
from .oci.digest import sha256_digest
from .release import Encoded
from .store import Store
from .store.transfer import parallel_push


def publish(
    store: Store, encoded: Encoded, tag: str, attached: Callable[[], Attachments] | None = None
) -> str:
    """Push everything and tag the index; return the index's digest. What is
    attached to the version (its referrers, its signature) goes before the tag,
    so that a version is never seen unsigned; ``attached`` is asked for it once the
    blobs are up (it may have been made meanwhile)."""
    parallel_push(store, encoded.blobs)
    for content, media_type in encoded.manifests:
        store.push_manifest(content, media_type, sha256_digest(content))
    digest = store.push_manifest(encoded.index, mt.OCI_INDEX, sha256_digest(encoded.index))
    if attached is not None:
        publish_attachments(store, attached(), digest)
    store.tag_once(tag, encoded.index, mt.OCI_INDEX)
    return digest
