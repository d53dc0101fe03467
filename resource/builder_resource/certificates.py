"""The extra CA certificates a pipeline asks us to trust.

They come from ``source.ca_certs`` and the ``LOCAL_CA_CERTIFICATE`` variable
(Concourse's convention for a CA every resource and task should trust). The
store (for its own HTTPS) and the build (for everything it runs) both use them.

The store's HTTP clients verify against one bundle file, so the extra PEMs are
appended to the public bundle (certifi's and the system's) in a temporary file
that lives as long as the process: a private CA adds trust, it never takes the
public CAs away.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ConfigError

LOCAL_CA_VARIABLE = "LOCAL_CA_CERTIFICATE"

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


def trusted_certificates(ca_certs: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Every certificate of ``source.ca_certs`` and ``LOCAL_CA_CERTIFICATE`` as
    one normalised PEM block each, duplicates dropped, in order."""
    found: list[str] = []
    named = [(f"source.ca_certs[{i}]", text) for i, text in enumerate(ca_certs)]
    if env.get(LOCAL_CA_VARIABLE, "").strip():
        named.append((LOCAL_CA_VARIABLE, env[LOCAL_CA_VARIABLE]))
    for where, text in named:
        for pem in split_pem(text, where):
            if pem not in found:
                found.append(pem)
    return found


def split_pem(text: str, where: str) -> list[str]:
    """The certificates in ``text``; a :class:`ConfigError` naming ``where``
    if there is none or one is not base64."""
    blocks = _PEM.findall(text)
    if not blocks:
        raise ConfigError(f"{where}: not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    out = []
    for block in blocks:
        body = "".join(block.split())
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: a certificate is not valid base64") from None
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        out.append(
            "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
        )
    return out


SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
_bundles: dict[str, str] = {}


def check_certificates(ca_certs: Sequence[str]) -> None:
    """Refuse what OpenSSL would refuse, with a message that says which entry."""
    for i, pem in enumerate(ca_certs):
        try:
            ssl.create_default_context(cadata=pem)
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"CA certificate {i + 1} is not a valid PEM certificate: {e}"
            ) from None


def public_bundle() -> str:
    """The PEM text of the public CAs requests would use, plus the system's."""
    texts = []
    try:
        import certifi

        texts.append(Path(certifi.where()).read_text())
    except (ImportError, OSError):
        pass
    for path in SYSTEM_BUNDLES:
        try:
            texts.append(Path(path).read_text())
            break
        except OSError:
            continue
    return "\n".join(texts)


def ca_bundle_file(ca_certs: Sequence[str]) -> str:
    """Path of a bundle that trusts the public CAs and ``ca_certs``. One file per
    distinct set, reused by every store of the process and removed at exit."""
    check_certificates(ca_certs)
    key = hashlib.sha256("\n".join(ca_certs).encode()).hexdigest()
    path = _bundles.get(key)
    if path and os.path.exists(path):
        return path
    fd, path = tempfile.mkstemp(prefix="builder-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write(public_bundle())
        f.write("\n")
        for pem in ca_certs:
            f.write(pem.strip() + "\n")
    _bundles[key] = path
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
