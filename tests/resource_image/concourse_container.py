"""Containers shaped like the ones a Concourse worker makes, run with runc.

The shape is Concourse's containerd runtime (worker/runtime/spec, as
shared/concourse-runtime/README.md describes it), in its three modes:

- ``unprivileged`` (a resource type without ``privileged: true``): namespaces pid,
  ipc, uts, mount, network, cgroup and user, root mapped to host uid 4294967294
  and every other id to itself; Concourse's fourteen capabilities; the seccomp
  allowlist ``seccomp-unprivileged.json``; /sys and the cgroup mount read-only.
- ``fuse-only`` (``privileged: true`` on a worker with
  ``CONCOURSE_CONTAINERD_PRIVILEGED_MODE=fuse-only``): the same, plus CAP_SYS_ADMIN,
  ``/dev/fuse`` and ``seccomp-fuse-only.json``.
- ``full`` (``privileged: true`` in the default mode): real root, every
  capability, no seccomp filter, no user namespace.

Under a user namespace, files owned by host root would show up as ``nobody`` and
be read-only to the container's root; Concourse's volumes are "namespaced" for
that (baggageclaim shifts uid/gid 0 to 4294967294), and :func:`namespace_tree`
does the same to a rootfs or a volume before it is handed to such a container.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[3] / "shared" / "concourse-runtime"
MODES = ("unprivileged", "fuse-only", "full")

#: Root inside a user-namespaced container is this uid (and gid) on the host.
NAMESPACED_ROOT = 4294967294
ID_MAPPINGS = [
    {"containerID": 0, "hostID": NAMESPACED_ROOT, "size": 1},
    {"containerID": 1, "hostID": 1, "size": NAMESPACED_ROOT - 1},
]

CONCOURSE_CAPABILITIES = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
]

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def all_capabilities() -> list[str]:
    """Every capability this process may pass on (its bounding set), as a privileged
    container gets all that the worker has."""
    status = Path("/proc/self/status").read_text()
    bounding = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("CapBnd")), 16)
    names = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
        "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
        "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
        "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
        "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
        "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
    ]  # fmt: skip
    return [f"CAP_{name}" for bit, name in enumerate(names) if bounding >> bit & 1]


@dataclass(frozen=True)
class Mount:
    """A host directory bind-mounted into the container, as Concourse mounts volumes."""

    source: Path
    destination: str
    read_only: bool = False


def namespace_tree(root: Path) -> None:
    """Shift ownership 0 -> 4294967294 under ``root`` (uid and gid apart), keeping
    every mode bit, as baggageclaim does to a volume for a user-namespaced container."""

    def shift(path: str) -> None:
        info = os.lstat(path)
        uid = NAMESPACED_ROOT if info.st_uid == 0 else info.st_uid
        gid = NAMESPACED_ROOT if info.st_gid == 0 else info.st_gid
        if (uid, gid) == (info.st_uid, info.st_gid):
            return
        os.lchown(path, uid, gid)
        if not stat.S_ISLNK(info.st_mode):  # chown clears setuid and setgid
            os.chmod(path, stat.S_IMODE(info.st_mode))

    shift(str(root))
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            shift(os.path.join(directory, name))


def spec(
    mode: str,
    rootfs: Path,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str = "/",
    mounts: Sequence[Mount] = (),
) -> dict:
    """The OCI runtime config of one Concourse container in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    namespaced = mode != "full"
    namespaces = ["pid", "ipc", "uts", "mount", "network", "cgroup"]
    if namespaced:
        namespaces.append("user")
    if mode == "full":
        capabilities = all_capabilities()
    elif mode == "fuse-only":
        capabilities = [*CONCOURSE_CAPABILITIES, "CAP_SYS_ADMIN"]
    else:
        capabilities = list(CONCOURSE_CAPABILITIES)
    linux: dict = {
        "namespaces": [{"type": kind} for kind in namespaces],
        "resources": {"devices": [{"allow": mode == "full", "access": "rwm"}]},
    }
    if namespaced:
        linux["uidMappings"] = ID_MAPPINGS
        linux["gidMappings"] = ID_MAPPINGS
        linux["seccomp"] = json.loads((RUNTIME / f"seccomp-{mode}.json").read_text())
    if mode == "fuse-only":
        fuse = os.stat("/dev/fuse")
        linux["devices"] = [
            {
                "path": "/dev/fuse",
                "type": "c",
                "major": os.major(fuse.st_rdev),
                "minor": os.minor(fuse.st_rdev),
                "fileMode": 0o666,
                "uid": 0,
                "gid": 0,
            }
        ]
        linux["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
        )
    user_env = {"PATH": PATH, "HOME": "/root", "USER": "root", **(env or {})}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": [f"{key}={value}" for key, value in user_env.items()],
            "cwd": cwd,
            "capabilities": {
                kind: capabilities
                for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")
            },
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": "concourse-container",
        "mounts": _mounts(namespaced) + [_bind(m) for m in mounts],
        "linux": linux,
    }


def _mounts(namespaced: bool) -> list[dict]:
    """Concourse's default mounts: /sys and the cgroups read-only."""
    sys_options = ["nosuid", "noexec", "nodev", "ro"]
    no_exec = ["nosuid", "noexec", "nodev"]
    table = [  # destination, type, source, options
        ("/proc", "proc", "proc", no_exec),
        ("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        ("/dev/pts", "devpts", "devpts",
         ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
        ("/dev/shm", "tmpfs", "shm", [*no_exec, "mode=1777", "size=65536k"]),
        ("/dev/mqueue", "mqueue", "mqueue", no_exec),
        ("/sys", "sysfs", "sysfs", sys_options),
        ("/sys/fs/cgroup", "cgroup", "cgroup", [*sys_options, "relatime"]),
    ]  # fmt: skip
    mounts = [
        {"destination": destination, "type": kind, "source": source, "options": list(options)}
        for destination, kind, source, options in table
    ]
    if not namespaced:
        # devpts's gid=5 is only valid where gid 5 is the host's.
        mounts[2]["options"].append("gid=5")
    return mounts


def _bind(mount: Mount) -> dict:
    options = ["rbind", "ro" if mount.read_only else "rw"]
    return {
        "destination": mount.destination,
        "type": "bind",
        "source": str(mount.source),
        "options": options,
    }


def run(
    mode: str,
    rootfs: Path,
    args: Sequence[str],
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: str = "/",
    mounts: Sequence[Mount] = (),
    timeout: float = 900,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``args`` in a fresh container of ``mode`` over ``rootfs`` (shared: the
    caller copies it per mode) and return what it printed and its exit status."""
    bundle = rootfs.parent / f"bundle-{uuid.uuid4().hex[:12]}"
    bundle.mkdir()
    state = bundle / "runc-state"
    config = spec(mode, rootfs, args, env=env, cwd=cwd, mounts=mounts)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    runc = shutil.which("runc") or "runc"
    try:
        return subprocess.run(
            [runc, "--root", str(state), "run", "--bundle", str(bundle), bundle.name],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    finally:
        subprocess.run(
            [runc, "--root", str(state), "delete", "--force", bundle.name],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(bundle, ignore_errors=True)
