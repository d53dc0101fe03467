"""Image manifests and indexes: parsing exact bytes, building new ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ImageError
from . import media_types as mt
from .descriptor import Descriptor, canonical_json, parse_json


@dataclass(frozen=True)
class ImageManifest:
    """An image manifest (OCI or Docker schema 2), with its exact bytes."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> ImageManifest:
        data = parse_json(raw, "manifest")
        if not isinstance(data, dict):
            raise ImageError("manifest: not a JSON object")
        kind = data.get("mediaType") or media_type or mt.OCI_MANIFEST
        if media_type and data.get("mediaType") and data["mediaType"] != media_type:
            raise ImageError(f"manifest: mediaType {data['mediaType']} differs from {media_type}")
        if kind not in mt.IMAGE_MANIFESTS:
            raise ImageError(f"manifest: {kind} is not an image manifest")
        if "config" not in data or not isinstance(data.get("layers"), list):
            raise ImageError("manifest: config or layers missing")
        return cls(
            raw=raw,
            media_type=kind,
            config=Descriptor.from_json(data["config"], "manifest config"),
            layers=tuple(
                Descriptor.from_json(d, f"manifest layer {i}") for i, d in enumerate(data["layers"])
            ),
            artifact_type=data.get("artifactType"),
            annotations=data.get("annotations"),
        )


@dataclass(frozen=True)
class Index:
    raw: bytes
    manifests: tuple[Descriptor, ...]
    artifact_type: str | None
    annotations: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> Index:
        data = parse_json(raw, "index")
        if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
            raise ImageError("index: manifests missing")
        return cls(
            raw=raw,
            manifests=tuple(
                Descriptor.from_json(d, f"index entry {i}") for i, d in enumerate(data["manifests"])
            ),
            artifact_type=data.get("artifactType"),
            annotations=dict(data.get("annotations") or {}),
        )


def build_manifest(
    media_type: str,
    config: Descriptor,
    layers: list[Descriptor],
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    body = {"mediaType": media_type, "config": config.to_json()}
    return _serialise(body, "layers", layers, artifact_type, annotations)


def build_index(
    manifests: list[Descriptor],
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    return _serialise(
        {"mediaType": mt.OCI_INDEX}, "manifests", manifests, artifact_type, annotations
    )


def _serialise(
    body: dict[str, Any],
    key: str,
    descriptors: list[Descriptor],
    artifact_type: str | None,
    annotations: dict[str, str] | None,
) -> bytes:
    body = {"schemaVersion": 2, **body, key: [d.to_json() for d in descriptors]}
    if artifact_type:
        body["artifactType"] = artifact_type
    if annotations:
        body["annotations"] = annotations
    return canonical_json(body)


def image_config_summary(raw: bytes) -> dict[str, Any]:
    """What a task needs from an image config: env, user, and the platform."""
    data = parse_json(raw, "image config")
    if not isinstance(data, dict):
        raise ImageError("image config: not a JSON object")
    config = data.get("config") or {}
    return {
        "env": list(config.get("Env") or []),
        "user": str(config.get("User") or ""),
        "os": str(data.get("os") or ""),
        "architecture": str(data.get("architecture") or ""),
        "variant": str(data.get("variant") or ""),
    }


def config_platform(raw: bytes) -> dict[str, str]:
    """The platform an image config says it is for, as an index entry spells it."""
    summary = image_config_summary(raw)
    platform = {"os": summary["os"], "architecture": summary["architecture"]}
    if summary["variant"]:
        platform["variant"] = summary["variant"]
    return platform
