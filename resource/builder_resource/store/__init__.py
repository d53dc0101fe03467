"""Where versions live: an OCI registry over HTTP or an OCI image-layout directory.

Both speak the same small interface (:class:`~.base.Store`); nothing here knows of
builds or of Concourse.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (check's path)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .base import Store


def __getattr__(name: str) -> Any:
    # ``Store`` is loaded on first use: base.py pulls in the content model, which
    # check's light client (``light.py``, ``wire.py``) must not pay for.
    if name == "Store":
        from .base import Store

        globals()["Store"] = Store
        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool = False,
    ca_certs: Sequence[str] = (),
    light_first: bool = False,
    env: Mapping[str, str] | None = None,
) -> Store:
    """A layout store for an absolute path or ``file://`` URL, else a registry store:
    with ``light_first``, one that tries the light client before requests (for
    writers that mostly find their blobs there already; ``env`` is the process
    environment, which decides whether the light client may be used)."""
    if repository.startswith(("/", "file://")):
        from .layout import LayoutStore

        return LayoutStore(repository)
    if light_first:
        from .light_first import LightFirstRegistry

        return LightFirstRegistry(
            repository,
            username=username,
            password=password,
            insecure=insecure,
            ca_certs=ca_certs,
            env=env,
        )
    from .registry import RegistryStore  # imported only when needed: it pulls in requests

    return RegistryStore(
        repository,
        username=username,
        password=password,
        insecure=insecure,
        ca_certs=list(ca_certs),
    )
