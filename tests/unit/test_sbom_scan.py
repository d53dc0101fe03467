"""``sbom.package_files`` reads the layers at once and folds them in layer order:
hand-made gzip layers whose result depends on that order, and on each of
image-spec ``layer.md``'s ways of hiding a lower file, are checked against the
exact dict expected; a failing layer's error comes out and no thread is left."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
from collections.abc import Callable

import pytest

from builder_resource.attest import sbom

Entry = bytes | tuple[bytes, int] | tuple[str, str] | None


def _layer(entries: dict[str, Entry]) -> bytes:
    """A gzip tar layer: bytes is a 0644 file, (bytes, mode) a file with that mode,
    ("symlink", target) a symlink, None a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry in entries.items():
            info = tarfile.TarInfo(name)
            if entry is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(entry, tuple) and isinstance(entry[0], str):
                info.type, info.linkname = tarfile.SYMTYPE, str(entry[1])
                tar.addfile(info)
            else:
                data, mode = entry if isinstance(entry, tuple) else (entry, 0o644)
                assert isinstance(data, bytes) and isinstance(mode, int)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue(), mtime=0)


def _openers(layers: list[bytes]) -> list[Callable[[], io.BytesIO]]:
    return [lambda data=data: io.BytesIO(data) for data in layers]


def _digest(data: bytes) -> bytes:
    return b"sha256:" + hashlib.sha256(data).hexdigest().encode()


EXEC = sbom.EXECUTABLES
STATUS_1 = b"Package: bash\nStatus: install ok installed\nVersion: 5.1\n"
STATUS_2 = b"Package: bash\nStatus: install ok installed\nVersion: 5.2\n"
STATUS_3 = b"Package: bash\nStatus: install ok installed\nVersion: 5.3\n"
SIX = b"Name: six\nVersion: 1.16.0\n"
PIP = b"Name: pip\nVersion: 24.0\n"
APK = b"P:musl\nV:1.2.4-r2\n"
OS_RELEASE = b"ID=debian\n"
SITE = "usr/lib/python3/dist-packages"
TOOL, RUN, OLD_LINK, NEW = b"\x7fELF tool", b"\x7fELF run", b"\x7fELF ln", b"\x7fELF new"
RUN_2, BIG = b"\x7fELF run 2", bytes(range(256)) * 1024  # past one small read


def test_package_files_folds_the_layers_in_order() -> None:
    layers = [
        _layer({
            "var/lib/dpkg/status": STATUS_1,
            "./etc/os-release": OS_RELEASE,  # names as tar writes them are cleaned
            f"{SITE}/six-1.16.0.dist-info/METADATA": SIX,
            "usr/bin/tool": (TOOL, 0o755),
            "opt/app/run": (RUN, 0o755),
            "opt/app/link": (OLD_LINK, 0o700),
            "opt/tree/bin/x": (TOOL, 0o755),
            "lib/apk/db/installed": APK,
            "etc/motd": b"not a database, not executable",
        }),
        _layer({
            "var/lib/dpkg/status": STATUS_2,  # replaces layer 0's
            f"{SITE}/.wh..wh..opq": b"",  # hides six, not pip beside it in this layer
            f"{SITE}/pip-24.0.dist-info/METADATA": PIP,
            "usr/bin/tool": None,  # an executable replaced by a directory
            "opt/app/run": (RUN_2, 0o755),  # an executable replaced by another
            "opt/app/link": ("symlink", "run"),  # ... and by a non-directory
            "opt/tree": b"a file where a tree was",  # removes the tree
            "lib/apk/db/.wh.installed": b"",
        }),
        _layer({
            "var/lib/dpkg/.wh.status": b"",  # removes layer 1's
            "var/lib/dpkg/status.d/base": STATUS_3,
            "bin/new": (NEW, 0o555),
            "bin/big": (BIG, 0o755),
        }),
        _layer({"lib/apk/db/installed": APK + b"A:x86_64\n"}),  # back after its whiteout
    ]  # fmt: skip
    assert sbom.package_files(_openers(layers)) == {
        "etc/os-release": OS_RELEASE,
        f"{SITE}/pip-24.0.dist-info/METADATA": PIP,
        EXEC + "opt/app/run": _digest(RUN_2),
        "var/lib/dpkg/status.d/base": STATUS_3,
        EXEC + "bin/new": _digest(NEW),
        EXEC + "bin/big": _digest(BIG),
        "lib/apk/db/installed": APK + b"A:x86_64\n",
    }


def test_package_files_of_one_layer_and_of_none() -> None:
    layer = _layer({"var/lib/dpkg/status": STATUS_1, "usr/bin/tool": (TOOL, 0o755)})
    assert sbom.package_files(_openers([layer])) == {
        "var/lib/dpkg/status": STATUS_1,
        EXEC + "usr/bin/tool": _digest(TOOL),
    }
    assert sbom.package_files([]) == {}


def test_a_failing_layer_raises_and_leaves_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbom.os, "cpu_count", lambda: 4)  # a pool even on one CPU
    second_failed = threading.Event()

    def first_to_fail() -> io.BytesIO:
        second_failed.set()
        raise OSError("layer 2 is unreadable")

    def last_to_fail() -> io.BytesIO:
        second_failed.wait(10)  # fails after layer 2 has: the order is the layers'
        raise OSError("layer 1 is unreadable")

    good = _layer({"var/lib/dpkg/status": STATUS_1})
    [opener] = _openers([good])
    with pytest.raises(OSError, match="layer 1 is unreadable"):
        sbom.package_files([opener, last_to_fail, first_to_fail, opener])
    with pytest.raises(EOFError):  # not a whole gzip stream: the reader's error comes out
        sbom.package_files(_openers([good, good[:-20], good]))
    assert [t.name for t in threading.enumerate() if t.name.startswith("sbom-scan")] == []
