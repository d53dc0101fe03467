"""Everything put attaches to one version: the provenance, an SBOM per image,
and with a key, the signatures. Turns a release into :class:`Attachments`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from ..errors import ResourceError
from ..oci import media_types as mt
from ..oci.descriptor import Descriptor
from ..oci.digest import sha256_digest
from ..release import Release
from ..store import Store
from . import provenance, sbom
from .referrers import (
    IMAGE_DIGEST,
    IMAGE_NAME,
    PREDICATE_ANNOTATION,
    Attachments,
    Attestation,
    attachments,
    find,
)
from .signing import Signer, Verifier

log = logging.getLogger(__name__)


def attach(
    release: Release,
    index: bytes,
    facts: provenance.PutFacts,
    *,
    with_sbom: bool,
    signer: Signer | None,
    earlier: Mapping[tuple[str, str], bytes] | None = None,
) -> Attachments:
    """The attachments of the version whose index is ``index``. ``earlier``: SBOM
    statements by (image name, manifest digest) to take rather than read the
    layers again (:func:`reusable_sboms`)."""
    earlier = earlier or {}
    subject = Descriptor(mt.OCI_INDEX, sha256_digest(index), len(index))
    images = [(name, image) for item in release.images for name, image in _single(item)]
    built = [
        provenance.BuiltImage(
            name, image.manifest_digest, image.manifest.annotations or {}, _config(image)
        )
        for name, image in images
    ]
    facts = replace(facts, images=built)
    found = [
        Attestation(
            provenance.provenance_statement(facts, subject.digest), provenance.PREDICATE_TYPE
        )
    ]
    if with_sbom:
        for name, image in images:
            statement = earlier.get((name, image.manifest_digest))
            if statement is not None:
                log.info("sbom of %s: the same image's, from the newest version", name)
            else:
                statement = _sbom_statement(name, image, facts)
            found.append(
                Attestation(
                    statement,
                    sbom.PREDICATE_TYPE,
                    {IMAGE_NAME: name, IMAGE_DIGEST: image.manifest_digest},
                )
            )
    return attachments(subject, found, facts.repository, signer)


def reusable_sboms(
    store: Store, version: str, signer: Signer | None
) -> dict[tuple[str, str], bytes]:
    """The SBOM statements attached to ``version``, by (image name, manifest
    digest). An SBOM follows from the image's bytes and name, so a put of an image
    an earlier version holds may take that statement instead of reading every
    layer again. With ``signer``, only statements signed by its key are taken: what
    this put signs again must be what it signed before. Nothing, on any failure."""
    verifier = Verifier((signer.key.public_key(),)) if signer is not None else None

    def is_sbom(descriptor: Descriptor) -> bool:
        return descriptor.annotations.get(PREDICATE_ANNOTATION) == sbom.PREDICATE_TYPE

    try:
        found = find(store, version, verifier, keep=is_sbom)
    except (ResourceError, ValueError) as e:
        log.info("sbom: none reused from %s: %s", version, e)
        return {}
    reusable: dict[tuple[str, str], bytes] = {}
    for item in found:
        name = item.descriptor.annotations.get(IMAGE_NAME, "")
        digest = item.descriptor.annotations.get(IMAGE_DIGEST, "")
        if _sbom_about(item.statement, name, digest):
            reusable[(name, digest)] = item.statement
    return reusable


def _sbom_about(statement: bytes, name: str, digest: str) -> bool:
    """Whether ``statement`` is a CycloneDX 1.5 SBOM statement about exactly the
    image ``name`` at ``digest``, as :func:`_sbom_statement` writes them."""
    try:
        body = json.loads(statement)
        return (
            digest.startswith("sha256:")
            and body["predicateType"] == sbom.PREDICATE_TYPE
            and body["subject"] == [{"name": name, "digest": {"sha256": digest[7:]}}]
            and body["predicate"]["specVersion"] == "1.5"
        )
    except (ValueError, KeyError, TypeError):
        return False


def _sbom_statement(name: str, image: Any, facts: provenance.PutFacts) -> bytes:
    started = time.monotonic()
    files = sbom.package_files([partial(_open, layer) for layer in image.layers])
    document = sbom.cyclonedx(name, image.manifest_digest, files, facts.finished)
    count = len(json.loads(document).get("components") or [])
    log.info("sbom of %s: %d components in %.2f s", name, count, time.monotonic() - started)
    return sbom.sbom_statement(name, image.manifest_digest, document)


def _single(item: Any) -> list[tuple[str, Any]]:
    """A release image as (name, single-platform image) pairs: a multi-platform
    image gives one per platform, named ``<name>@<digest>``."""
    children = getattr(item.image, "images", None)
    if children is None:
        return [(item.name, item.image)]
    return [(f"{item.name}@{child.manifest_digest}", child) for child in children]


def _config(image: Any) -> bytes:
    with image.config.open() as f:
        return f.read(16 << 20)


def _open(blob: Any) -> Any:
    return blob.open()
