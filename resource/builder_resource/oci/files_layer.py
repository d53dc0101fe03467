"""A version's other files as one layer: what the build's collector writes and the
release's mapping to an OCI index reads, so it lives below both."""

from __future__ import annotations

from dataclasses import dataclass

from .blobs import BlobSource

#: The directory the layer's tar holds the files under (the output directory's
#: default name, which get puts them back into).
FILES_ROOT = "release"


@dataclass(frozen=True)
class FilesLayer:
    blob: BlobSource  # gzip tar of the output directory, images left out
    uncompressed_digest: str
    count: int
    size: int
