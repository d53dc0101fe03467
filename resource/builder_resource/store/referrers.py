"""The referrers of a manifest (distribution-spec v1.1, "Listing Referrers"), and
the referrers tag schema that stands in for the API where a registry lacks it.

A referrer is a manifest whose ``subject`` names another. A registry with the API
lists them at ``GET /v2/<name>/referrers/<digest>`` as an image index of
descriptors (``artifactType``, falling back to the config's media type, and the
manifest's annotations). Without it (distribution 2.8 answers 404), the client
keeps that same index itself under the tag ``sha256-<hex>`` of the subject's
digest. Pure: bytes in, bytes out; the stores do the reading and writing.
"""

from __future__ import annotations

import json

from ..errors import ImageError
from ..oci import media_types as mt
from ..oci.descriptor import Descriptor, canonical_json
from ..oci.digest import sha256_digest


def fallback_tag(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>`` (the referrers tag schema)."""
    return digest.replace(":", "-", 1)


def subject_of(content: bytes) -> str | None:
    """The digest a manifest's ``subject`` names, or None."""
    try:
        subject = json.loads(content).get("subject")
        return Descriptor.from_json(subject).digest if subject is not None else None
    except (ValueError, AttributeError, ImageError):
        return None


def referrer_descriptor(content: bytes, media_type: str) -> Descriptor:
    """How a referrers index lists a manifest: its ``artifactType`` (else its
    config's media type) and its annotations."""
    data = json.loads(content)
    artifact_type = data.get("artifactType") or (data.get("config") or {}).get("mediaType")
    return Descriptor(
        media_type,
        sha256_digest(content),
        len(content),
        dict(data.get("annotations") or {}),
        artifact_type=artifact_type,
    )


def parse_referrers(index: bytes, where: str) -> list[Descriptor]:
    try:
        data = json.loads(index)
        items = data["manifests"]
        return [Descriptor.from_json(d, f"{where} entry {i}") for i, d in enumerate(items)]
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"{where}: not a referrers index") from None


def with_referrer(index: bytes | None, added: Descriptor, where: str) -> bytes:
    """The referrers index ``index`` (None: none yet) with ``added`` in it."""
    listed = parse_referrers(index, where) if index is not None else []
    listed = [d for d in listed if d.digest != added.digest] + [added]
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [d.to_json() for d in listed],
        }
    )
