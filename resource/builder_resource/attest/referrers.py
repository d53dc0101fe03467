"""Where attestations and signatures live: OCI 1.1 referrers of the version.

Each attestation is an artifact manifest (image-spec ``manifest.md``, "Guidelines
for Artifact Usage") with the empty config, one layer and ``subject`` = the
version's index::

    artifactType  application/vnd.in-toto+json
    layer         the in-toto statement (application/vnd.in-toto+json), or, with a
                  signing key, its DSSE envelope (application/vnd.dsse.envelope.v1+json)
    annotations   in-toto.io/predicate-type, and for an SBOM the image's name and
                  manifest digest

With a signing key, the version's signature in cosign's format (``cosign.py``) is
one more referrer, also tagged ``sha256-<hex>.sig`` where cosign looks for it.
:func:`publish_attachments` pushes them; :func:`find` and :func:`verify_version`
read them back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ImageError, NotFoundError, ResourceError
from ..oci import media_types as mt
from ..oci.blobs import BlobSource, BytesBlob
from ..oci.descriptor import Descriptor, canonical_json
from ..store import Store
from ..store.transfer import parallel_push
from . import cosign
from .signing import Signer, Verifier
from .statement import ENVELOPE_MEDIA_TYPE, PAYLOAD_TYPE, STATEMENT_MEDIA_TYPE, envelope
from .statement import open_envelope as _open_envelope

ARTIFACT_TYPE = PAYLOAD_TYPE
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
IMAGE_NAME = "org.concourse-builder-img.image.name"
IMAGE_DIGEST = "org.concourse-builder-img.image.digest"


class VerificationError(ResourceError):
    """A version is not signed by any of ``source.verify_keys``."""


@dataclass(frozen=True)
class Attestation:
    """One in-toto statement about the version, and what it is about."""

    statement: bytes
    predicate_type: str
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachments:
    """What put pushes after the index and before the tag."""

    blobs: tuple[BlobSource, ...]
    referrers: tuple[bytes, ...]  # OCI manifests, each with ``subject``
    signature: bytes | None  # cosign's manifest, for the ``.sig`` tag as well


def attachments(
    subject: Descriptor,
    attestations: list[Attestation],
    repository: str,
    signer: Signer | None,
) -> Attachments:
    empty = BytesBlob(mt.EMPTY_JSON)
    blobs: dict[str, BlobSource] = {empty.digest: empty}
    manifests = []
    for item in attestations:
        if signer is None:
            layer, layer_type = BytesBlob(item.statement), STATEMENT_MEDIA_TYPE
        else:
            layer, layer_type = BytesBlob(envelope(item.statement, signer)), ENVELOPE_MEDIA_TYPE
        blobs[layer.digest] = layer
        annotations = {PREDICATE_ANNOTATION: item.predicate_type, **item.annotations}
        manifests.append(
            canonical_json(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_MANIFEST,
                    "artifactType": ARTIFACT_TYPE,
                    "config": Descriptor(mt.OCI_EMPTY, empty.digest, empty.size).to_json(),
                    "layers": [
                        Descriptor(
                            layer_type,
                            layer.digest,
                            layer.size,
                            {PREDICATE_ANNOTATION: item.predicate_type},
                        ).to_json()
                    ],
                    "subject": subject.to_json(),
                    "annotations": annotations,
                }
            )
        )
    signature = None
    if signer is not None:
        image = cosign.signature_image(repository, subject, signer)
        blobs.update((b.digest, b) for b in image.blobs)
        signature = image.manifest
    return Attachments(tuple(blobs.values()), tuple(manifests), signature)


def publish_attachments(store: Store, attached: Attachments, subject: str) -> None:
    parallel_push(store, attached.blobs)
    for manifest in attached.referrers:
        store.push_referrer(manifest, mt.OCI_MANIFEST)
    if attached.signature is not None:
        store.push_referrer(attached.signature, mt.OCI_MANIFEST)
        store.push_manifest(attached.signature, mt.OCI_MANIFEST, cosign.signature_tag(subject))


def verify_version(store: Store, digest: str, verifier: Verifier) -> None:
    """Refuse, in one line naming the digest, a version whose cosign signature is
    missing or verifies under none of the keys."""
    tag = cosign.signature_tag(digest)
    try:
        manifest, _ = store.get_manifest(tag)
    except NotFoundError:
        raise VerificationError(
            f"version {digest} is not signed: no {tag} in {store.location}"
        ) from None
    for layer, signature in cosign.signed_layers(manifest):
        signed = _read_blob(store, layer)
        if cosign.accepts(signed, signature, digest, verifier):
            return
    raise VerificationError(
        f"version {digest}: its signature ({tag}) does not verify with any of verify_keys"
    )


@dataclass(frozen=True)
class Found:
    """An attestation read back: its referrer descriptor and statement bytes."""

    descriptor: Descriptor
    statement: bytes
    envelope: bytes | None


def find(
    store: Store,
    digest: str,
    verifier: Verifier | None,
    keep: Callable[[Descriptor], bool] | None = None,
) -> list[Found]:
    """The version's attestations (those ``keep`` accepts by their referrer
    descriptor); with a ``verifier``, each must be a DSSE envelope signed by one of
    its keys, else the whole version is refused."""
    found = []
    for descriptor in store.referrers(digest):
        if descriptor.artifact_type != ARTIFACT_TYPE or (keep and not keep(descriptor)):
            continue
        raw, media_type = store.get_manifest(descriptor.digest)
        layers = json.loads(raw).get("layers") or []
        if len(layers) != 1:
            raise ImageError(f"attestation {descriptor.digest}: expected one layer")
        layer = Descriptor.from_json(layers[0], f"attestation {descriptor.digest} layer")
        data = _read_blob(store, layer)
        if layer.media_type == ENVELOPE_MEDIA_TYPE:
            statement = _open_envelope(data, verifier)
            if statement is None:
                raise VerificationError(
                    f"version {digest}: attestation {descriptor.digest} is not signed "
                    "by any of verify_keys"
                )
            found.append(Found(descriptor, statement, data))
        elif verifier is not None:
            raise VerificationError(
                f"version {digest}: attestation {descriptor.digest} is not signed"
            )
        else:
            found.append(Found(descriptor, data, None))
    return found


def _read_blob(store: Store, descriptor: Descriptor, limit: int = 64 << 20) -> bytes:
    if descriptor.size > limit:
        raise ImageError(f"blob {descriptor.digest}: {descriptor.size} bytes, more than expected")
    with store.open_blob(descriptor.digest, descriptor.size) as reader:
        return b"".join(iter(lambda: reader.read(1 << 20), b""))  # to EOF: verified
