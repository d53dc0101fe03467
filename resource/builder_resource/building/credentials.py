"""Credentials for registries the build pulls from, as a docker ``config.json``.

img (through docker/cli's config loader) and buildah (through containers/image)
both read ``$DOCKER_CONFIG/config.json``, so one file in a private directory
serves both builders, and a Makefile's own ``docker``/``skopeo``-style tools.
The file never leaves that directory, which is removed after the build; no
password is ever logged or put in an error.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryLogin:
    """Credentials for a registry the build pulls from (``source.registries``)."""

    host: str
    username: str
    password: str = field(repr=False)


# docker/cli (and so img) looks Docker Hub's credentials up under this key.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}


def auth_key(host: str) -> str:
    """The ``auths`` key for ``host``: ``host[:port]`` without a scheme or a
    path, and Docker Hub under its historical URL."""
    bare = host.strip()
    for scheme in ("https://", "http://"):
        if bare.startswith(scheme):
            bare = bare[len(scheme) :]
    bare = bare.split("/", 1)[0]
    if not bare:
        raise ConfigError("source.registries: a host is empty")
    return DOCKER_HUB_KEY if bare in DOCKER_HUB_HOSTS else bare


def docker_config(registries: Sequence[RegistryLogin]) -> dict:
    auths: dict[str, dict[str, str]] = {}
    for i, registry in enumerate(registries):
        try:
            key = auth_key(registry.host)
        except ConfigError:
            raise ConfigError(f"source.registries[{i}].host: empty") from None
        if ":" in registry.username:
            raise ConfigError(f"source.registries[{i}].username: must not contain ':'")
        secret = f"{registry.username}:{registry.password}"
        auths[key] = {"auth": base64.b64encode(secret.encode()).decode()}
    return {"auths": auths}


def write_docker_config(directory: Path, registries: Sequence[RegistryLogin]) -> Path:
    """Write ``directory/config.json`` (mode 0600, in a 0700 directory) and
    return ``directory``, the value for ``DOCKER_CONFIG``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(docker_config(registries), f)
    path.chmod(0o600)
    hosts = ", ".join(auth_key(r.host) for r in registries) or "none"
    log.info("registry credentials for the build: %s", hosts)
    return directory
