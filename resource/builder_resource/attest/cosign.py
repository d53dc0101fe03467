"""A version's signature in cosign's format, so ``cosign verify --key`` accepts it.

cosign (sigstore/cosign ``pkg/oci``, ``pkg/cosign/verify.go``; the format is
sigstore's "simple signing", after containers/image's ``docs/containers-signature.5.md``)
signs this payload, compact JSON in this key order::

    {"critical":{"identity":{"docker-reference":"<repository>"},
                 "image":{"docker-manifest-digest":"sha256:<hex>"},
                 "type":"cosign container image signature"},
     "optional":null}

and stores it as the one layer (media type
``application/vnd.dev.cosign.simplesigning.v1+json``) of an image manifest tagged
``sha256-<hex>.sig`` in the image's repository, with the base64 signature in the
layer's annotation ``dev.cosignproject.cosign/signature``. Verifying means: the
signature verifies over the layer's exact bytes, and the payload names the digest.
cosign does not check ``docker-reference`` (the repository may be copied).
Ours also carries ``subject`` (OCI 1.1), so it is a referrer of the version too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import ImageError
from ..oci import media_types as mt
from ..oci.blobs import BytesBlob
from ..oci.descriptor import Descriptor, canonical_json
from .signing import Signer, Verifier, b64decode, b64encode

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"


def signature_tag(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>.sig``: where cosign looks."""
    return digest.replace(":", "-", 1) + ".sig"


def payload(repository: str, digest: str) -> bytes:
    """The simple-signing payload, byte for byte as cosign (Go's encoding/json of
    its struct, fields in declaration order) writes it."""
    body = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignatureImage:
    """The signature manifest and the blobs it needs (config, payload)."""

    manifest: bytes
    blobs: tuple[BytesBlob, ...]


def signature_image(repository: str, subject: Descriptor, signer: Signer) -> SignatureImage:
    signed = BytesBlob(payload(repository, subject.digest))
    signature = signer.sign(signed.data)
    # An image config as go-containerregistry's empty image with one layer has it:
    # the payload is its "layer", uncompressed, so its diff_id is its digest.
    config = BytesBlob(
        canonical_json(
            {
                "architecture": "",
                "config": {},
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {"diff_ids": [signed.digest], "type": "layers"},
            }
        )
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": Descriptor(mt.OCI_CONFIG, config.digest, config.size).to_json(),
            "layers": [
                Descriptor(
                    SIMPLE_SIGNING,
                    signed.digest,
                    signed.size,
                    {SIGNATURE_ANNOTATION: b64encode(signature)},
                ).to_json()
            ],
            "subject": subject.to_json(),
        }
    )
    return SignatureImage(manifest, (config, signed))


def signed_layers(manifest: bytes) -> list[tuple[Descriptor, bytes]]:
    """(payload layer, signature) for each simple-signing layer of a signature
    manifest; layers without a readable signature are left out."""
    try:
        layers = json.loads(manifest).get("layers") or []
    except (ValueError, AttributeError):
        return []
    found = []
    for item in layers:
        try:
            layer = Descriptor.from_json(item)
        except ImageError:  # a malformed entry is simply not a signature
            continue
        sig = b64decode(layer.annotations.get(SIGNATURE_ANNOTATION, ""))
        if layer.media_type == SIMPLE_SIGNING and sig:
            found.append((layer, sig))
    return found


def accepts(signed_payload: bytes, signature: bytes, digest: str, verifier: Verifier) -> bool:
    """cosign's two checks: the signature verifies over the payload's exact bytes
    under one of the keys, and the payload is a signature of ``digest``."""
    if not verifier.verifies(signed_payload, signature):
        return False
    try:
        critical = json.loads(signed_payload)["critical"]
        return (
            critical["type"] == SIGNATURE_TYPE
            and critical["image"]["docker-manifest-digest"] == digest
        )
    except (ValueError, KeyError, TypeError):
        return False
