"""Everything put attaches to one version: the provenance, an SBOM per image,
and with a key, the signatures. Turns a release into :class:`Attachments`."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from functools import partial
from typing import Any

from ..oci import media_types as mt
from ..oci.descriptor import Descriptor
from ..oci.digest import sha256_digest
from ..release import Release
from . import provenance, sbom
from .referrers import IMAGE_DIGEST, IMAGE_NAME, Attachments, Attestation, attachments
from .signing import Signer

log = logging.getLogger(__name__)


def attach(
    release: Release,
    index: bytes,
    facts: provenance.PutFacts,
    *,
    with_sbom: bool,
    signer: Signer | None,
) -> Attachments:
    """The attachments of the version whose index is ``index``."""
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
            started = time.monotonic()
            files = sbom.package_files([partial(_open, layer) for layer in image.layers])
            document = sbom.cyclonedx(name, image.manifest_digest, files, facts.finished)
            count = len(json.loads(document).get("components") or [])
            log.info("sbom of %s: %d packages in %.2f s", name, count, time.monotonic() - started)
            found.append(
                Attestation(
                    sbom.sbom_statement(name, image.manifest_digest, document),
                    sbom.PREDICATE_TYPE,
                    {IMAGE_NAME: name, IMAGE_DIGEST: image.manifest_digest},
                )
            )
    return attachments(subject, found, facts.repository, signer)


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
