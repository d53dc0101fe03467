"""The interface every store implements.

It is shaped after the distribution API, the narrower of the two stores: blobs
by digest, manifests by digest or tag, and a tag listing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from ..oci.blobs import BlobSource
from ..oci.descriptor import Descriptor


class Store(Protocol):
    """A content-addressed store of one repository.

    Every method raises :class:`~builder_resource.errors.StoreError` (or its
    subclass ``NotFoundError``) with a message naming the repository.
    """

    #: What a user writes to pull from it: ``host:port/path`` or ``/abs/dir``.
    location: str

    def blob_exists(self, digest: str) -> bool:
        """Whether the store already has the blob (a HEAD on a registry)."""
        ...

    def push_blob(self, blob: BlobSource) -> None:
        """Store a blob unless it is there already. Streams; never loads it whole."""
        ...

    def open_blob(self, digest: str, size: int | None = None) -> AbstractContextManager[BinaryIO]:
        """A stream of the blob's bytes that raises ``DigestMismatchError`` at EOF if
        they do not hash to ``digest`` (and ``size``, when given). Read it to the end."""
        ...

    def push_manifest(self, content: bytes, media_type: str, reference: str) -> str:
        """Store a manifest under a digest or a tag; return its digest."""
        ...

    def tag_once(self, tag: str, content: bytes, media_type: str) -> None:
        """Tag a manifest, already pushed by digest, unless the tag exists: versions
        are immutable. ``TagTakenError`` names the digest another put tagged. A layout
        decides under its lock; a registry (distribution has no conditional PUT)
        checks right before the write and reads the tag back after it."""
        ...

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        """The exact bytes and media type of a manifest, by digest (verified) or tag.
        Raises ``NotFoundError`` when it does not exist."""
        ...

    def resolve_tag(self, tag: str) -> str | None:
        """The digest a tag points at, or None when there is no such tag."""
        ...

    def check_push(self) -> None:
        """Raise ``StoreError`` unless a push here would be accepted, writing nothing
        (a registry: an upload started with push rights, then cancelled)."""
        ...

    def list_tags(self) -> list[str]:
        """Every tag of the repository, in no particular order; [] when it is empty
        or does not exist yet."""
        ...

    def push_referrer(self, content: bytes, media_type: str) -> str:
        """Store a manifest whose ``subject`` names another, so that
        :meth:`referrers` of that digest lists it; return its digest. A registry
        without the referrers API gets the referrers tag schema's ``sha256-<hex>``
        index; a layout lists it in its ``index.json``, untagged."""
        ...

    def referrers(self, digest: str) -> list[Descriptor]:
        """The manifests whose ``subject`` is ``digest``; [] when there are none."""
        ...
