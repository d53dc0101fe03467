"""Running the build command, its output streamed to our stderr."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import BuildError

log = logging.getLogger(__name__)


def run_build_command(command: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Run ``command`` with bash in ``cwd``. Its stdout and stderr both go to our
    stderr: stdout belongs to the one JSON answer."""
    log.info("running `%s` in %s", command, cwd)
    sys.stderr.flush()
    try:
        completed = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(),
            check=False,
        )
    except OSError as e:
        raise BuildError(f"could not start `{command}` in {cwd}: {e}") from e
    if completed.returncode != 0:
        raise BuildError(
            f"`{command}` in {cwd} failed with exit status {completed.returncode}; "
            "nothing was published",
            exit_status=completed.returncode,
        )


def run_tool(args: list[str], env: Mapping[str, str] | None = None, what: str = "") -> None:
    """Run a builder's helper command (save, push); its output goes to stderr."""
    log.debug("+ %s", " ".join(args))
    sys.stderr.flush()
    try:
        completed = subprocess.run(
            args,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(),
            check=False,
        )
    except OSError as e:
        raise BuildError(f"{what or args[0]}: could not run {args[0]}: {e}") from e
    if completed.returncode != 0:
        raise BuildError(
            f"{what or args[0]}: `{' '.join(args)}` failed with exit status {completed.returncode}"
        )
