"""Where versions live: an OCI registry over HTTP or an OCI image-layout directory.

Both speak the same small interface (:class:`~.base.Store`); nothing here knows of
builds or of Concourse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..certificates import trusted_certificates
from .auth import Memo
from .base import Store


def open_store(
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool = False,
    ca_certs: Sequence[str] = (),
    env: Mapping[str, str],
    lean: bool = False,
    hand_over: bool = True,
    memo: Memo | None = None,
    tries: int | None = None,
) -> Store:
    """A layout store for an absolute path or ``file://`` URL, else a registry store
    that trusts ``ca_certs`` and the environment's ``LOCAL_CA_CERTIFICATE``. For
    ``lean``, ``hand_over`` and ``memo``, see :class:`~.registry.RegistryStore`;
    ``tries``: fewer attempts than the default at a transient failure."""
    if repository.startswith(("/", "file://")):
        from .layout import LayoutStore

        return LayoutStore(repository)
    from .registry import RegistryStore, RetryPolicy

    return RegistryStore(
        repository,
        username=username,
        password=password,
        insecure=insecure,
        ca_certs=trusted_certificates(ca_certs, env),
        lean=lean,
        hand_over=hand_over,
        env=env,
        memo=memo,
        policy=RetryPolicy(tries=tries) if tries else None,
    )
