"""Running the build command and the builders' helper commands, their output
streamed to our stderr: stdout belongs to the one JSON answer."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import BuildError

log = logging.getLogger(__name__)


def run_build_command(command: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Run ``command`` with bash in ``cwd``."""
    log.info("running `%s` in %s", command, cwd)
    try:
        status = _run_to_stderr(["bash", "-c", command], env, cwd)
    except OSError as e:
        raise BuildError(f"could not start `{command}` in {cwd}: {e}") from e
    if status != 0:
        raise BuildError(
            f"`{command}` in {cwd} failed with exit status {status}; nothing was published",
            exit_status=status,
        )


def run_tool(args: list[str], env: Mapping[str, str] | None = None, what: str = "") -> None:
    """Run a builder's helper command (save, push)."""
    log.debug("+ %s", " ".join(args))
    what = what or args[0]
    try:
        status = _run_to_stderr(args, env)
    except OSError as e:
        raise BuildError(f"{what}: could not run {args[0]}: {e}") from e
    if status != 0:
        raise BuildError(f"{what}: `{' '.join(args)}` failed with exit status {status}")


def _run_to_stderr(args: list[str], env: Mapping[str, str] | None, cwd: Path | None = None) -> int:
    sys.stderr.flush()
    completed = subprocess.run(
        args,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno(),
        stderr=sys.stderr.fileno(),
        check=False,
    )
    return completed.returncode
