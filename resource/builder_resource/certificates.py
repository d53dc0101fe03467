"""The extra CA certificates a pipeline asks us to trust.

They come from ``source.ca_certs`` and the ``LOCAL_CA_CERTIFICATE`` variable
(Concourse's convention for a CA every resource and task should trust). The
store (for its own HTTPS) and the build (for everything it runs) both use them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

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
