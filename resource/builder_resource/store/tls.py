"""Extra CA certificates for talking to a registry with a private CA.

requests verifies against one bundle file, so the extra PEMs are appended to the
public bundle (certifi's and the system's) in a temporary file that lives as long
as the process: a private CA adds trust, it never takes the public CAs away.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

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
