"""Hostile layers: whatever they try, nothing outside the root changes.

Each test applies layers into ``root`` beside a ``sentinel`` directory and checks,
on the way out, that the sentinel's tree (contents, modes, mtimes, link counts)
and the directory holding both are exactly as before. Entries that can be
contained land inside the root (as umoci and containerd do); the others are
refused with an ImageError naming the layer and entry, and the root is left empty.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder_resource.errors import ImageError
from builder_resource.oci.rootfs import apply_layers
from fixtures.layer_tars import (
    Entry,
    device,
    directory,
    file,
    hardlink,
    layer_tar,
    opaque,
    symlink,
    whiteout,
)
from fixtures.trees import tree_snapshot

NOBODY = 65534


@dataclass
class Place:
    base: Path
    root: Path
    sentinel: Path

    @property
    def secret(self) -> Path:
        return self.sentinel / "secret"

    def inside(self, host_path: Path | str) -> Path:
        """Where an absolute host path lands when contained in the root."""
        return self.root / os.fspath(host_path).lstrip("/")


def _outside(base: Path) -> dict:
    snap = tree_snapshot(base, mtimes=True, dir_mtimes=True, include_root=True)
    return {k: v for k, v in snap.items() if k != "root" and not k.startswith("root/")}


def make_place(base: Path) -> Place:
    root = base / "root"
    root.mkdir()
    sentinel = base / "sentinel"
    (sentinel / "dir").mkdir(parents=True)
    (sentinel / "secret").write_text("secret")
    (sentinel / "dir" / "file").write_text("file")
    for p in (sentinel / "dir" / "file", sentinel / "secret", sentinel / "dir", sentinel):
        os.utime(p, (1_000_000, 1_000_000))
    return Place(base, root, sentinel)


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Place]:
    p = make_place(tmp_path)
    before = _outside(tmp_path)
    yield p
    assert _outside(tmp_path) == before, "something outside the root changed"
    assert p.secret.stat().st_nlink == 1
    assert p.secret.read_text() == "secret"


def apply(root: Path, *layers: list[Entry], **options: object) -> None:
    apply_layers([io.BytesIO(layer_tar(entries)) for entries in layers], root, **options)


def assert_refused(root: Path, layers: list[list[Entry]], *words: str) -> ImageError:
    with pytest.raises(ImageError) as caught:
        apply(root, *layers)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert list(root.iterdir()) == [], "a refused layer left something behind"
    return caught.value


# --- contained --------------------------------------------------------------


def test_dotdot_names_stay_inside(place: Place) -> None:
    apply(place.root, [file("../sentinel/secret", b"pwned"), file("a/../../../x", b"x")])
    assert (place.root / "sentinel" / "secret").read_bytes() == b"pwned"
    assert (place.root / "x").read_bytes() == b"x"


def test_absolute_names_stay_inside(place: Place) -> None:
    apply(place.root, [file(f"{place.secret}", b"pwned"), directory("/abs/")])
    assert place.inside(place.secret).read_bytes() == b"pwned"
    assert (place.root / "abs").is_dir()


@pytest.mark.parametrize("target", ["/", "..", "../../../..", "/..", "a/../../.."])
def test_write_through_symlink_to_root_or_above_same_layer(place: Place, target: str) -> None:
    rel_sentinel = os.path.relpath(place.sentinel, "/")
    apply(
        place.root,
        [
            symlink("esc", target),
            file("esc/sentinel/secret", b"pwned"),
            file(f"esc/{rel_sentinel}/secret", b"pwned too"),
        ],
    )
    assert (place.root / "sentinel" / "secret").read_bytes() == b"pwned"
    assert place.inside(place.secret).read_bytes() == b"pwned too"
    assert os.readlink(place.root / "esc") == target  # created verbatim


def test_write_through_symlink_from_a_lower_layer(place: Place) -> None:
    apply(
        place.root,
        [symlink("esc", str(place.sentinel)), symlink("up", "../../../../..")],
        [
            file("esc/secret", b"pwned"),
            file("up/sentinel/dir/file", b"pwned"),
            directory("esc/new/"),
        ],
    )
    assert place.inside(place.secret).read_bytes() == b"pwned"
    assert (place.root / "sentinel" / "dir" / "file").read_bytes() == b"pwned"
    assert place.inside(place.sentinel / "new").is_dir()


def test_file_replaces_a_symlink_instead_of_writing_through_it(place: Place) -> None:
    apply(
        place.root,
        [symlink("f", str(place.secret)), symlink("d", str(place.sentinel))],
        [file("f", b"pwned", mode=0o600), directory("d/", mode=0o700), file("d/secret", b"in")],
    )
    assert not (place.root / "f").is_symlink()
    assert (place.root / "f").read_bytes() == b"pwned"
    assert (place.root / "d").is_dir() and not (place.root / "d").is_symlink()
    assert (place.root / "d" / "secret").read_bytes() == b"in"


def test_dangling_and_chained_symlink_parents(place: Place) -> None:
    apply(
        place.root,
        [
            symlink("dangling", "/nonexistent/deeper"),
            file("dangling/f", b"1"),
            symlink("a", "../../.."),
            symlink("b", "a/../a/.."),
            file("b/sentinel/secret", b"2"),
        ],
    )
    assert (place.root / "nonexistent" / "deeper" / "f").read_bytes() == b"1"
    assert (place.root / "sentinel" / "secret").read_bytes() == b"2"


def test_hardlink_targets_resolve_inside_the_root(place: Place) -> None:
    secret_rel = os.path.relpath(place.secret, "/")
    apply(
        place.root,
        [
            file(secret_rel, b"image's own"),
            symlink("slash", "/"),
            file("etc/shadow", b"shadow"),
            hardlink("h1", str(place.secret)),  # absolute: the root's copy
            hardlink("h2", f"../../../../../../{secret_rel}"),
            hardlink("h3", "slash/etc/shadow"),  # symlinked parent, resolved inside
        ],
    )
    for name in ("h1", "h2"):
        assert os.path.samefile(place.root / name, place.inside(place.secret))
    assert os.path.samefile(place.root / "h3", place.root / "etc" / "shadow")


def test_hardlink_replaces_a_symlink_pointing_outside(place: Place) -> None:
    apply(place.root, [symlink("s", str(place.secret))], [file("t", b"t"), hardlink("s", "t")])
    assert os.path.samefile(place.root / "s", place.root / "t")


def test_whiteouts_through_symlinks_stay_inside(place: Place) -> None:
    apply(
        place.root,
        [
            symlink("s", str(place.sentinel)),
            symlink("up", ".."),
            symlink("gone", str(place.secret)),
        ],
        [
            file("s/.wh.secret"),
            file("s/.wh.dir"),
            opaque("s"),
            opaque("up/sentinel"),
            file("up/.wh.sentinel"),
            whiteout("gone"),
        ],
    )
    assert os.readlink(place.root / "s") == str(place.sentinel)
    assert not os.path.lexists(place.root / "gone")


def test_whiteout_with_dotdot_prefix_is_cleaned_to_the_root(place: Place) -> None:
    apply(
        place.root, [file("x", b"x"), file("keep", b"k")], [file("../.wh.x"), file("/../.wh.nope")]
    )
    assert not (place.root / "x").exists()
    assert (place.root / "keep").exists()


def test_opaque_whiteout_at_the_root_clears_lower_layers_only(place: Place) -> None:
    apply(place.root, [file("old", b"o"), directory("d/")], [file("new", b"n"), opaque("")])
    assert sorted(p.name for p in place.root.iterdir()) == ["new"]


def test_root_entry_as_directory_updates_the_root(place: Place) -> None:
    apply(place.root, [directory("./", mode=0o750), file("f")])
    assert stat.S_IMODE(place.root.stat().st_mode) == 0o750


def test_devices_as_placeholders_when_unprivileged(place: Place) -> None:
    apply(
        place.root,
        [device("dev/null", 1, 3), device("dev/sda", 8, 0, kind="block"), file("dev/keep")],
        privileged=False,
    )
    for name in ("null", "sda"):
        st = os.lstat(place.root / "dev" / name)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0 and st.st_size == 0


def test_ownership_ignored_when_unprivileged(place: Place) -> None:
    apply(place.root, [file("f", b"x", mode=0o4755, uid=1234, gid=99)], privileged=False)
    st = os.lstat(place.root / "f")
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert stat.S_IMODE(st.st_mode) == 0o4755


def _may_make_devices() -> bool:
    """Root alone is not enough: a container build step is root without CAP_MKNOD
    (bit 27 of the effective set)."""
    if os.geteuid() != 0:
        return False
    status = Path("/proc/self/status").read_text().splitlines()
    effective = int(next(line.split()[1] for line in status if line.startswith("CapEff")), 16)
    return bool(effective >> 27 & 1)


@pytest.mark.skipif(not _may_make_devices(), reason="needs root with CAP_MKNOD")
def test_devices_and_ownership_when_root(place: Place) -> None:
    apply(place.root, [device("dev/null", 1, 3), file("f", b"x", mode=0o4755, uid=1234, gid=99)])
    st = os.lstat(place.root / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    st = os.lstat(place.root / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 99, 0o4755)


# --- refused ------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        symlink("./", "/"),
        symlink(".", "../sentinel"),
        symlink("../..", "/"),
        file("/", b"x"),
        hardlink(".", "etc/passwd"),
    ],
    ids=["dot-slash-symlink", "dot-symlink", "dotdot-symlink", "slash-file", "dot-hardlink"],
)
def test_root_cannot_change_type(place: Place, entry: Entry) -> None:
    assert_refused(
        place.root, [[file("etc/passwd", b"p"), entry, file("f", b"x")]], "layer 0", "root"
    )


@pytest.mark.parametrize(
    "target",
    ["../sentinel/secret", "../../sentinel/secret", "SECRET", "slash/SENTINEL/secret"],
)
def test_hardlink_to_outside_is_refused(place: Place, target: str) -> None:
    target = target.replace("SECRET", str(place.secret)).replace("/SENTINEL", str(place.sentinel))
    assert_refused(
        place.root,
        [[file("a", b"a"), symlink("slash", "/")], [hardlink("h", target)]],
        "layer 1",
        "'h'",
        "does not exist in the root",
    )


def test_hardlink_to_directory_is_refused(place: Place) -> None:
    assert_refused(
        place.root,
        [[directory("etc/"), hardlink("h", "etc")]],
        "layer 0",
        "hardlink to a directory",
    )
    assert_refused(place.root, [[hardlink("h", "/")]], "hardlink to the root directory")


@pytest.mark.parametrize(
    "name",
    [".wh..", ".wh...", ".wh.", "a/.wh.", "a/.wh...", ".wh.../x", ".wh../x", "a/.wh.x/y"],
)
def test_malformed_whiteouts_are_refused(place: Place, name: str) -> None:
    err = assert_refused(place.root, [[file("a/x", b"x")], [file(name)]], "layer 1", "whiteout")
    assert repr(name) in str(err)


def test_symlink_loop_in_a_parent_is_refused(place: Place) -> None:
    assert_refused(
        place.root,
        [[symlink("a", "b"), symlink("b", "a/x"), file("a/f", b"x")]],
        "layer 0",
        "'a/f'",
        "symbolic links",
    )


def test_file_as_a_parent_is_refused(place: Place) -> None:
    assert_refused(place.root, [[file("f", b"x"), file("f/g", b"y")]], "not a directory")


def test_failure_in_a_later_layer_leaves_nothing(place: Place) -> None:
    layers = [[directory("usr/", mode=0o555), file("usr/a", b"a", mode=0o400)], [file("b")]]
    layers[1].append(hardlink("h", "/nowhere"))
    assert_refused(place.root, layers, "layer 1", "'h'")


def test_corrupt_layer_leaves_nothing(place: Place) -> None:
    good = io.BytesIO(layer_tar([file("a", b"a")]))
    with pytest.raises(ImageError, match="layer 1"):
        apply_layers([good, io.BytesIO(b"\x1f\x8b\x08\x00garbage" * 100)], place.root)
    assert list(place.root.iterdir()) == []


# --- a real unprivileged process ----------------------------------------------


def _run_as_nobody(fn: Callable[[], object]) -> dict:
    """Run ``fn`` in a forked child that has dropped to uid/gid 65534; return what it
    returned (JSON) or the error it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                result = {"ok": fn()}
            except Exception as e:
                result = {
                    "error": type(e).__name__,
                    "message": str(e),
                    "tb": traceback.format_exc(),
                }
            os.write(write_end, json.dumps(result).encode())
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as r:
        out = r.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and out, "the unprivileged child failed"
    return json.loads(out)


@pytest.fixture
def nobody_place() -> Iterator[Place]:
    """A place under /tmp (pytest's own tmp dir is private to root), owned by the
    unprivileged user so that an escape would not be stopped by permissions."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    base = Path(tempfile.mkdtemp(prefix="rootfs-nobody-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        p = make_place(base)
        for path, dirs, files in os.walk(base):
            for name in [*dirs, *files]:
                os.chown(os.path.join(path, name), NOBODY, NOBODY, follow_symlinks=False)
        os.chown(base, NOBODY, NOBODY)
        before = _outside(base)
        yield p
        assert _outside(base) == before, "something outside the root changed"
        assert p.secret.read_text() == "secret"
    finally:
        shutil.rmtree(base)


def _as_nobody_layers(p: Place) -> list[list[Entry]]:
    return [
        [
            directory("ro/", mode=0o555),
            file("ro/f", b"f"),
            directory("locked/", mode=0o000),
            directory("locked/inner/", mode=0o700),
            file("locked/inner/g", b"g", mode=0o4755, uid=0, gid=0),
            device("dev/null", 1, 3),
            symlink("esc", str(p.sentinel)),
            symlink("up", "../../.."),
        ],
        [
            file("ro/f2", b"f2"),
            file("locked/h", b"h"),
            file("esc/secret", b"pwned"),
            file("up/sentinel/dir/file", b"pwned"),
            file("esc/.wh.dir"),
        ],
    ]


def test_unprivileged_process_applies_and_contains(nobody_place: Place) -> None:
    p = nobody_place
    layers = [layer_tar(entries) for entries in _as_nobody_layers(p)]

    def child() -> object:
        apply_layers([io.BytesIO(data) for data in layers], p.root)
        return "ok"

    result = _run_as_nobody(child)
    assert result == {"ok": "ok"}, result.get("tb", result)
    root = p.root
    null = os.lstat(root / "dev" / "null")
    assert stat.S_ISREG(null.st_mode) and stat.S_IMODE(null.st_mode) == 0
    assert stat.S_IMODE(os.lstat(root / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(root / "locked").st_mode) == 0o000
    assert (root / "ro" / "f2").read_bytes() == b"f2"
    g = os.lstat(root / "locked" / "inner" / "g")
    assert (g.st_uid, stat.S_IMODE(g.st_mode)) == (NOBODY, 0o4755)
    assert p.inside(p.secret).read_bytes() == b"pwned"
    assert (root / "sentinel" / "dir" / "file").read_bytes() == b"pwned"
    for path, _, files in os.walk(root):
        for name in files:
            assert os.lstat(os.path.join(path, name)).st_uid == NOBODY


def test_unprivileged_failure_leaves_nothing(nobody_place: Place) -> None:
    p = nobody_place
    layers = [layer_tar(entries) for entries in _as_nobody_layers(p)]
    layers.append(layer_tar([hardlink("h", str(p.sentinel / "dir" / "file"))]))

    def child() -> object:
        apply_layers([io.BytesIO(data) for data in layers], p.root)
        return "applied"

    result = _run_as_nobody(child)
    assert result.get("error") == "ImageError", result
    assert "layer 2" in result["message"] and "'h'" in result["message"]
    assert list(p.root.iterdir()) == []
