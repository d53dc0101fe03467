"""in-toto statements and the DSSE envelopes that sign them.

- Statement (in-toto attestation framework, ``spec/v1/statement.md``)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": ..., "digest": {"sha256": "<hex>"}}],
     "predicateType": "<URI>", "predicate": {...}}

- DSSE envelope (secure-systems-lab/dsse ``envelope.md``, ``protocol.md``)::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": base64(statement bytes),
     "signatures": [{"keyid": "...", "sig": base64(Sign(PAE(type, payload)))}]}

  where ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``,
  LEN being the byte length in ASCII decimal and SP one space. The signature
  covers PAE, never the JSON around it, so the envelope's own bytes may change.
"""

from __future__ import annotations

import json
from typing import Any

from ..oci.descriptor import canonical_json
from .signing import Signer, Verifier, b64decode, b64encode

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: The media types of an attestation layer: the statement itself, or signed.
STATEMENT_MEDIA_TYPE = PAYLOAD_TYPE
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


def statement(subjects: list[tuple[str, str]], predicate_type: str, predicate: Any) -> bytes:
    """The statement's bytes; ``subjects`` are (name, ``sha256:<hex>``) pairs."""
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}
                for name, digest in subjects
            ],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def envelope(payload: bytes, signer: Signer, payload_type: str = PAYLOAD_TYPE) -> bytes:
    signature = signer.sign(pae(payload_type, payload))
    return canonical_json(
        {
            "payloadType": payload_type,
            "payload": b64encode(payload),
            "signatures": [{"keyid": signer.key_id, "sig": b64encode(signature)}],
        }
    )


def open_envelope(data: bytes, verifier: Verifier | None) -> bytes | None:
    """The payload of an envelope; with a ``verifier``, only when one of its
    signatures verifies under one of the keys (else None). None for an envelope
    that is not one."""
    try:
        body = json.loads(data)
        payload_type = body["payloadType"]
        payload = b64decode(body["payload"])
        signatures = body.get("signatures") or []
    except (ValueError, KeyError, TypeError):
        return None
    if payload is None or not isinstance(payload_type, str) or not isinstance(signatures, list):
        return None
    if verifier is None:
        return payload
    message = pae(payload_type, payload)
    for entry in signatures:
        sig = b64decode(entry.get("sig", "")) if isinstance(entry, dict) else None
        if sig is not None and verifier.verifies(message, sig):
            return payload
    return None
