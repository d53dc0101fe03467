"""The buildah driver: vfs storage and chroot isolation.

Both choices are what let buildah build where root is unprivileged on the host
(a worker in ``fuse-only`` privileged mode): vfs needs no overlay mounts, chroot
isolation needs no runc. They are exported as environment variables, so that a
Makefile's plain ``$(DOCKER) build -t x .`` gets them without knowing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import BuildError
from .cache import BuildCache
from .command import run_tool


class Buildah:
    """buildah, as installed from Debian."""

    name = "buildah"
    executable = "buildah"

    def environment(self, workdir: Path) -> dict[str, str]:
        """``workdir`` is unused: buildah keeps its store where its storage.conf
        says, and the Makefile's calls and ours must agree on it."""
        return {
            "DOCKER": "buildah",
            "BUILDER": "buildah",
            "STORAGE_DRIVER": "vfs",
            "BUILDAH_ISOLATION": "chroot",
            # One layer per instruction, as img and docker build do.
            "BUILDAH_LAYERS": "true",
        }

    def cache_flags(self, cache: BuildCache) -> list[str]:
        """``--layers`` too: a cache of one layer per instruction. An insecure cache
        registry is declared in a registries.conf of its own (see cache.py)."""
        return ["--layers", "--cache-from", cache.repository, "--cache-to", cache.repository]

    def save_image(self, reference: str, destination: Path, env: Mapping[str, str]) -> None:
        """A docker-archive (the legacy layout that ``docker load`` reads)."""
        destination = destination.absolute()
        destination.unlink(missing_ok=True)
        run_tool(
            ["buildah", "push", "--quiet", reference, f"docker-archive:{destination}:{reference}"],
            env,
            what=f"saving image {reference}",
        )
        if not destination.is_file():
            raise BuildError(f"saving image {reference}: buildah wrote no {destination}")
