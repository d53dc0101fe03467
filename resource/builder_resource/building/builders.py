"""The image builders behind one small interface, and the choice between them.

A builder contributes environment variables for the build command (``DOCKER``
and ``BUILDER`` for Makefiles that call ``$(DOCKER) build``, plus whatever the
builder itself needs to find its store), and saves one image from its store
into an archive. Building is the project's Makefile's business, not ours.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ..errors import BuildError
from .buildah import Buildah
from .cache import BuildCache
from .img import Img
from .privileges import in_user_namespace

log = logging.getLogger(__name__)

NAMES = ("img", "buildah")


class Builder(Protocol):
    name: str
    executable: str

    def environment(self, workdir: Path) -> dict[str, str]:
        """Variables the build command runs with; ``workdir`` is a private
        directory that lives as long as the build."""
        ...

    def save_image(self, reference: str, destination: Path, env: Mapping[str, str]) -> None:
        """Write the image ``reference`` from the builder's store to ``destination``
        (made absolute), with the build's environment ``env``."""
        ...

    def cache_flags(self, cache: BuildCache) -> list[str] | None:
        """What ``build`` needs to read and write ``cache``; None when this builder
        cannot use it."""
        ...


def default_builder_name(
    which: Callable[[str], str | None] | None = None,
    root_in_user_namespace: bool | None = None,
) -> str:
    """img where installed and root is real root; else buildah (img cannot
    build as root in a user namespace, img#273)."""
    return _default_builder(which, root_in_user_namespace)[0]


def _default_builder(
    which: Callable[[str], str | None] | None, root_in_user_namespace: bool | None
) -> tuple[str, str]:
    """The default builder's name, and why, in words for the build log."""
    which = which or shutil.which
    if root_in_user_namespace is None:
        root_in_user_namespace = os.geteuid() == 0 and in_user_namespace()
    if not which("img"):
        return "buildah", "img is not installed"
    if root_in_user_namespace:
        return "buildah", "root is mapped in a user namespace, where img cannot build (img#273)"
    return "img", "installed, and root is real root"


def choose_builder(
    requested: str | None,
    debug: bool = False,
    which: Callable[[str], str | None] | None = None,
) -> Builder:
    """``source.builder``, or the default (the choice, and why, in one log line);
    an error names a builder that is not installed in this image."""
    which = which or shutil.which
    name = requested
    if name is None:
        name, why = _default_builder(which, None)
        log.info("builder: %s, as source.builder is unset and %s", name, why)
    builder: Builder
    if name == "img":
        builder = Img(debug=debug)
    elif name == "buildah":
        builder = Buildah()
    else:
        raise BuildError(f"builder {name}: unknown; choose one of {', '.join(NAMES)}")
    if which(builder.executable) is None:
        raise BuildError(f"builder {name}: {builder.executable} is not installed in this image")
    return builder


__all__ = [
    "Buildah",
    "Builder",
    "Img",
    "choose_builder",
    "default_builder_name",
    "in_user_namespace",
]
