"""Keys and signatures: what put signs with and what get and check verify with.

Signatures are the ones cosign makes and checks with ``--key``
(sigstore/sigstore ``pkg/signature``): ECDSA over SHA-256, ASN.1 DER encoded
(any curve; P-256 is cosign's own); RSA PKCS#1 v1.5 over SHA-256; Ed25519 over the
message itself. So ``openssl dgst -sha256 -verify pub.pem -signature sig payload``
checks the first two independently of this code.

Keys are PEM: a private key in PKCS#8 or the traditional (SEC1, PKCS#1) form,
encrypted or not; public keys as SubjectPublicKeyInfo. cosign's own encrypted
``SIGSTORE PRIVATE KEY`` format is not read (``cosign import-key-pair`` goes the
other way: it takes such a PEM key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from ..errors import ConfigError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
_PRIVATE = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)


@dataclass(frozen=True)
class Signer:
    """A loaded private key; ``key_id`` names its public half (see :func:`key_id`)."""

    key: PrivateKey
    key_id: str

    def sign(self, message: bytes) -> bytes:
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(message)

    def public_pem(self) -> bytes:
        return _public_pem(self.key.public_key())


@dataclass(frozen=True)
class Verifier:
    """The public keys a version must be signed by (any one of them)."""

    keys: tuple[PublicKey, ...]

    def verifies(self, message: bytes, signature: bytes) -> bool:
        return any(_verify(key, message, signature) for key in self.keys)


def load_signer(pem: str, password: str | None, field: str = "source.signing_key") -> Signer:
    """The private key of ``pem``; an error names the field, never the key."""
    secret = password.encode() if password is not None else None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=secret)
    except TypeError:
        if secret is None:
            raise ConfigError(f"{field}: the key is encrypted: give signing_key_password") from None
        raise ConfigError(f"{field}: the key is not encrypted: drop signing_key_password") from None
    except (ValueError, UnsupportedAlgorithm):
        hint = " (or signing_key_password is wrong)" if secret is not None else ""
        raise ConfigError(f"{field}: not a PEM private key{hint}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size < 256:
        raise ConfigError(f"{field}: an elliptic curve key of at least 256 bits is needed")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise ConfigError(f"{field}: an RSA key of at least 2048 bits is needed")
    if not isinstance(key, _PRIVATE):
        raise ConfigError(f"{field}: ECDSA, RSA or Ed25519 keys only")
    return Signer(key, key_id(key.public_key()))


def load_verifier(pems: list[str], field: str = "source.verify_keys") -> Verifier:
    keys: list[PublicKey] = []
    for i, pem in enumerate(pems):
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except (ValueError, UnsupportedAlgorithm):
            raise ConfigError(f"{field}.{i}: not a PEM public key") from None
        if not isinstance(key, _PUBLIC):
            raise ConfigError(f"{field}.{i}: ECDSA, RSA or Ed25519 keys only")
        keys.append(key)
    return Verifier(tuple(keys))


def key_id(key: PublicKey) -> str:
    """``sha256:<hex>`` of the public key's DER SubjectPublicKeyInfo: a DSSE
    ``keyid`` that names the key without being a secret."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64decode(text: str) -> bytes | None:
    """Standard or URL-safe base64 (DSSE accepts both), None when it is neither."""
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _verify(key: PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
