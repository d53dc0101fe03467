"""The environment the build command runs in, and its private directory.

:func:`prepare_build` chooses the builder, checks that it can run here, and
yields it with the build's variables; a private directory (0700) holds what the
variables point at (the CA bundle, the docker ``config.json``, img's state) and
is removed when the build is over, credentials with it.

Variables, later ones winning: the resource's own environment (which carries
Concourse's ``BUILD_*`` variables and ``LOCAL_CA_CERTIFICATE``); the builder's
(``DOCKER``, ``BUILDER``, ...); the CA variables; ``DOCKER_CONFIG``; then the
pipeline's ``env``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..certificates import SystemStore, trust_extra_cas
from .builders import Builder, choose_builder
from .cache import BuildCache, insecure_registries_conf, install_cache
from .credentials import RegistryLogin, write_docker_config
from .privileges import refuse_img_in_user_namespace, require_namespaces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    """What the build takes of the pipeline's source, as plain values."""

    builder: str | None = None  # "img" or "buildah"; None: the default for this machine
    debug: bool = False
    ca_certs: Sequence[str] = ()
    registries: Sequence[RegistryLogin] = ()
    cache: BuildCache | None = None  # the registry repository for the layer cache


class PreparedBuild(NamedTuple):
    builder: Builder
    env: dict[str, str]


def build_environment(base: Mapping[str, str], *layers: Mapping[str, str]) -> dict[str, str]:
    """``base`` with each layer applied in turn."""
    env = dict(base)
    for layer in layers:
        env.update(layer)
    return env


@contextmanager
def prepare_build(
    settings: BuildSettings,
    user_env: Mapping[str, str],
    base: Mapping[str, str],
    *,
    probe: Callable[[str], None] | None = None,
    system_store: SystemStore | None = None,
    install_cas: bool | None = None,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    builder: Builder | None = None,
) -> Iterator[PreparedBuild]:
    """Yield the builder and the build's environment; clean up afterwards.

    ``probe`` (default :func:`require_namespaces`), ``system_store``,
    ``install_cas``, ``run`` and ``builder`` are for tests: a machine that runs
    them keeps its own CA store."""
    chosen = builder or choose_builder(settings.builder, debug=settings.debug)
    # Namespaces first: where none can be made, `privileged: true` is the one fix,
    # whichever builder was asked for.
    (probe or require_namespaces)(chosen.name)
    if chosen.name == "img":
        refuse_img_in_user_namespace()
    workdir = Path(tempfile.mkdtemp(prefix="builder-build-"))
    try:
        cas = trust_extra_cas(
            workdir / "ca",
            settings.ca_certs,
            base,
            system_store=system_store,
            install=install_cas,
            run=run,
        )
        docker_config = write_docker_config(workdir / "docker", settings.registries)
        env = build_environment(
            base,
            chosen.environment(workdir / "builder"),
            cas,
            {"DOCKER_CONFIG": str(docker_config)},
            insecure_registries_conf(workdir / "containers", settings.cache)
            if settings.cache and chosen.name == "buildah"
            else {},
            user_env,
        )
        if settings.cache is not None:
            env = install_cache(
                chosen.name,
                chosen.executable,
                chosen.cache_flags(settings.cache),
                settings.cache,
                workdir / "bin",
                env,
            )
        log.info(
            "builder %s; the build gets %s",
            chosen.name,
            " ".join(sorted(k for k in env if env.get(k) != base.get(k))) or "no new variables",
        )
        yield PreparedBuild(chosen, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
