"""Content descriptors (image-spec descriptor.md), as plain data.

Manifests are always kept as the exact bytes that were read or written: their
digest is the digest of those bytes, so they are never re-serialised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ImageError
from .digest import check_digest


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ImageError(f"{where}: not a JSON object")
        try:
            media_type = data["mediaType"]
            digest = check_digest(data["digest"])
            size = int(data["size"])
        except (KeyError, TypeError, ValueError) as e:
            raise ImageError(f"{where}: missing or invalid {e}") from None
        if size < 0:
            raise ImageError(f"{where}: negative size")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=dict(data.get("annotations") or {}),
            artifact_type=data.get("artifactType"),
            platform=data.get("platform"),
        )


def canonical_json(value: Any) -> bytes:
    """The one way this project serialises JSON it writes: stable key order, no
    spaces, so equal content gives equal digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"{what}: not valid JSON ({e})") from None
