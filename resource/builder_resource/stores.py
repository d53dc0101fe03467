"""The store a source names, with its credentials and trusted CAs."""

from __future__ import annotations

from collections.abc import Mapping

from .certificates import trusted_certificates
from .config import Source
from .store import Store, open_store


def store_for(source: Source, env: Mapping[str, str], *, light_first: bool = False) -> Store:
    """``light_first``: see :func:`~.store.open_store` (put asks for it)."""
    ca_certs = trusted_certificates(source.ca_certs, env)
    return open_store(
        source.repository,
        username=source.username,
        password=source.password.get_secret_value() if source.password else None,
        insecure=source.insecure,
        ca_certs=ca_certs,
        light_first=light_first,
        env=env,
    )
