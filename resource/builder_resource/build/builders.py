"""The image builders behind one small interface.

A builder contributes environment variables for the build command (``DOCKER``
for Makefiles that call ``$(DOCKER) build``) and saves an image from its store
into an archive.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ..errors import BuildError
from .command import run_tool


class Builder(Protocol):
    name: str

    def environment(self) -> dict[str, str]:
        """Variables the build command runs with."""
        ...

    def save_image(self, reference: str, destination: Path, env: Mapping[str, str]) -> None:
        """Write the image ``reference`` from the builder's store to ``destination``."""
        ...


class Buildah:
    """buildah with the vfs storage driver and chroot isolation: it builds in a
    container whose root is unprivileged (no overlay mounts, no runc)."""

    name = "buildah"

    def environment(self) -> dict[str, str]:
        return {
            "DOCKER": "buildah",
            "BUILDER": "buildah",
            "STORAGE_DRIVER": "vfs",
            "BUILDAH_ISOLATION": "chroot",
            # One layer per instruction, as img and docker build do.
            "BUILDAH_LAYERS": "true",
        }

    def save_image(self, reference: str, destination: Path, env: Mapping[str, str]) -> None:
        destination = destination.absolute()
        destination.unlink(missing_ok=True)
        run_tool(
            ["buildah", "push", "--quiet", reference, f"docker-archive:{destination}:{reference}"],
            env,
            what=f"saving image {reference}",
        )


def choose_builder(requested: str | None) -> Builder:
    """``source.builder``, or img where installed (and root is real root), else buildah."""
    name = requested or ("img" if shutil.which("img") and not in_user_namespace() else "buildah")
    if name == "buildah":
        if shutil.which("buildah") is None:
            raise BuildError("builder buildah: not installed in this image")
        return Buildah()
    raise BuildError(f"builder {name}: not supported yet")


def in_user_namespace() -> bool:
    """True when our root is mapped in a user namespace (``/proc/self/uid_map`` is
    not the identity map), where img cannot build (img#273)."""
    try:
        fields = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return fields[:3] != ["0", "0", "4294967295"]
