"""The img driver, shaped by img v0.5.11's CLI and bugs (shared/reference/img.md).

img keeps its images in a *state directory*. img reads no variable that names it
directly; without ``--state`` every subcommand uses ``$XDG_DATA_HOME/img``, else
``$HOME/.local/share/img``, else ``/tmp/img``. So the resource picks the state
directory by exporting ``XDG_DATA_HOME`` (a private directory of the put's):
a Makefile's plain ``img build -t x .`` and the resource's ``img save`` then share
one store, and nothing lands in the image's ``$HOME``. ``IMG_STATE`` is exported
too, for Makefiles that want to say ``--state $(IMG_STATE)`` or look inside.

What the driver avoids, and why:
- one image per ``img save``: two or more deadlock on img's own bbolt lock;
- absolute ``-o`` paths only (a relative ``img unpack -o`` spins forever; the
  driver never relies on img's notion of the working directory);
- never ``img unpack``: it ignores whiteouts and ownership; get applies layers itself;
- ``-d`` only after the subcommand: before it, img mistakes the subcommand for
  the flag's argument;
- no ``-b``: stores are per snapshot backend, and the Makefile's ``img build``
  uses the default (``auto``), so the save must too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import BuildError
from .cache import BuildCache
from .command import run_tool


def default_state_dir(env: Mapping[str, str]) -> Path:
    """Where img v0.5.11 keeps its state without ``--state`` (its
    ``defaultStateDirectory()``), for the environment it runs in."""
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]) / "img"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".local" / "share" / "img"
    return Path("/tmp/img")


class Img:
    """img v0.5.11 (genuinetools/img), the last release."""

    name = "img"
    executable = "img"

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug

    def environment(self, workdir: Path) -> dict[str, str]:
        data = workdir / "data"
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {
            "DOCKER": "img",
            "BUILDER": "img",
            "XDG_DATA_HOME": str(data),
            "IMG_STATE": str(default_state_dir({"XDG_DATA_HOME": str(data)})),
        }
        if os.geteuid() != 0:
            # Rootless img runs runc in its user namespace, where runc's default
            # /run/runc is not writable (img#169, runc#2960).
            runtime = workdir / "run"
            runtime.mkdir(mode=0o700, exist_ok=True)
            env["XDG_RUNTIME_DIR"] = str(runtime)
        return env

    def cache_flags(self, cache: BuildCache) -> list[str] | None:
        """``mode=max``: the layers of every stage go to the cache, not only the final
        image's, so a multi-stage build's compile stage is reused too (BuildKit's
        default, ``min``, keeps only what the image itself holds). None for a
        plain-HTTP registry: img v0.5.11 reaches registries over TLS only."""
        if cache.insecure:
            return None
        return [
            "--cache-from",
            cache.repository,
            "--cache-to",
            f"type=registry,ref={cache.repository},mode=max",
        ]

    def save_argv(self, reference: str, destination: Path, env: Mapping[str, str]) -> list[str]:
        """The one ``img save`` command line for one image. ``--state`` names the
        directory the build's own img calls used, by img's own rule applied to
        the build's environment (the pipeline's ``env`` may move it)."""
        if reference.startswith("-") or not reference.strip():
            raise BuildError(f"saving image {reference!r}: not an image reference")
        if not destination.is_absolute():
            raise BuildError(f"saving image {reference}: {destination} is not an absolute path")
        argv = ["img", "save"]
        if self.debug:
            argv.append("-d")
        argv += ["--state", str(default_state_dir(env)), "-o", str(destination), reference]
        return argv

    def save_image(self, reference: str, destination: Path, env: Mapping[str, str]) -> None:
        """img's dual archive (OCI layout plus docker ``manifest.json``)."""
        destination = Path(os.path.abspath(destination))
        destination.unlink(missing_ok=True)
        run_tool(self.save_argv(reference, destination, env), env, what=f"saving image {reference}")
        if not destination.is_file():
            raise BuildError(f"saving image {reference}: img wrote no {destination}")
