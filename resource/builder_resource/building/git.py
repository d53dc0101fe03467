"""What git says about the context: revision and source, credentials stripped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def _git(context: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(context), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def revision(context: Path) -> str | None:
    """The full sha of HEAD, when the context is a git checkout."""
    return _git(context, "rev-parse", "--verify", "HEAD")


def source_url(context: Path) -> str | None:
    url = _git(context, "config", "--get", "remote.origin.url")
    return strip_credentials(url) if url else None


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``; scp-like URLs kept."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)
