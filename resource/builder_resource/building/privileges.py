"""Can a builder run here? Answered before the build, in one line.

Every builder needs a mount namespace (and, when not root, a user namespace).
Concourse's seccomp profile for unprivileged containers forbids ``unshare`` and
``mount``, so in a resource type declared without ``privileged: true`` the build
would fail late, with an error that names neither the cause nor the fix. One
``unshare`` of the namespaces the builder needs costs a few milliseconds and
turns that into one line that names the setting.

Root mapped in a user namespace (a worker with
``CONCOURSE_CONTAINERD_PRIVILEGED_MODE=fuse-only``) can unshare, but img cannot
build there (img#273); buildah with vfs and chroot isolation can.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import BuildError

log = logging.getLogger(__name__)

IDENTITY_MAP = ["0", "0", "4294967295"]

PRIVILEGED_HINT = (
    "set `privileged: true` on the resource type (resource_types: [{name: ..., privileged: true}])"
)

Runner = Callable[..., subprocess.CompletedProcess]


def in_user_namespace(uid_map: Path = Path("/proc/self/uid_map")) -> bool:
    """True when our uids are mapped in a user namespace (``uid_map`` is not the
    identity), as under Concourse's fuse-only privileged mode."""
    try:
        fields = uid_map.read_text().split()
    except OSError:
        return False
    return fields[:3] != IDENTITY_MAP


def probe_argv(euid: int) -> list[str]:
    """The namespaces the builders need: root needs a mount namespace; anyone
    else also a user namespace with themselves as root in it."""
    if euid == 0:
        return ["unshare", "--mount", "true"]
    return ["unshare", "--user", "--map-root-user", "--mount", "true"]


def require_namespaces(
    builder: str,
    *,
    run: Runner = subprocess.run,
    euid: int | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> None:
    """Raise a one-line :class:`BuildError` when this process cannot create the
    namespaces ``builder`` needs. Without ``unshare`` there is nothing to ask,
    and the build goes ahead."""
    if which("unshare") is None:
        log.debug("no unshare to probe namespaces with; assuming they work")
        return
    argv = probe_argv(os.geteuid() if euid is None else euid)
    try:
        done = run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.debug("namespace probe %s: %s", argv, e)
        return
    if done.returncode == 0:
        return
    reason = _last_line(done.stderr) or f"exit status {done.returncode}"
    raise BuildError(
        f"the {builder} builder needs to create namespaces, and this container may not "
        f"(`{' '.join(argv)}`: {reason}): {PRIVILEGED_HINT}"
    )


def refuse_img_in_user_namespace(euid: int | None = None, uid_map: Path | None = None) -> None:
    """img as root inside a user namespace fails on its first mount (img#273)."""
    euid = os.geteuid() if euid is None else euid
    if euid == 0 and in_user_namespace(uid_map or Path("/proc/self/uid_map")):
        raise BuildError(
            "builder img cannot build as root in a user namespace (img#273), as on a worker "
            "with CONCOURSE_CONTAINERD_PRIVILEGED_MODE=fuse-only: set `source.builder: buildah`, "
            "or run the worker in full privileged mode"
        )


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
