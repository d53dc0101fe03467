"""fixtures/trees.py must notice every kind of difference it claims to compare,
or the rootfs comparisons with umoci would prove nothing."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from builder_resource.oci.rootfs import apply_layers
from fixtures.layer_tars import directory, file, hardlink, layer_tar, symlink
from fixtures.trees import assert_same_tree, diff_snapshots, tree_snapshot

OPTIONS = {"owners": True, "xattrs": True}  # no mtimes: each change must show by itself


def build(root: Path) -> None:
    entries = [
        directory("d/"),
        directory("d/empty/"),
        file("d/f", b"content", 0o644),
        file("d/suid", b"s", 0o4755),
        hardlink("d/h", "d/f"),
        symlink("d/l", "f"),
        file("d/owned", b"o", uid=1000, gid=1000),
    ]
    apply_layers([io.BytesIO(layer_tar(entries))], root, privileged=True)


def _content(r: Path) -> None:
    data = (r / "d/suid").read_bytes()
    (r / "d/suid").write_bytes(data[:-1] + b"t")  # same size, same mode


def _rewrite_hardlink(r: Path) -> None:
    data = (r / "d/h").read_bytes()
    os.unlink(r / "d/h")
    (r / "d/h").write_bytes(data)
    os.chmod(r / "d/h", 0o644)


def _retarget(r: Path) -> None:
    os.unlink(r / "d/l")
    os.symlink("./f", r / "d/l")


def _to_dir(r: Path) -> None:
    os.unlink(r / "d/suid")
    os.mkdir(r / "d/suid")


CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "content": (_content, "sha256"),
    "setuid bit": (lambda r: os.chmod(r / "d/suid", 0o755), "mode"),
    "owner": (lambda r: os.chown(r / "d/owned", 1000, 1001), "gid"),
    "symlink target": (_retarget, "target"),
    "hardlink split": (_rewrite_hardlink, "hardlinks"),
    "empty dir gone": (lambda r: os.rmdir(r / "d/empty"), "only in expected"),
    "extra file": (lambda r: (r / "d/new").write_bytes(b""), "only in actual"),
    "type": (_to_dir, "type"),
    "xattr": (lambda r: os.setxattr(r / "d/f", "user.x", b"1"), "xattrs"),
}


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership needs root")
@pytest.mark.parametrize("name", sorted(CHANGES))
def test_each_difference_is_reported(tmp_path: Path, name: str) -> None:
    build(tmp_path / "a")
    build(tmp_path / "b")
    assert_same_tree(tmp_path / "a", tmp_path / "b", **OPTIONS)
    change, word = CHANGES[name]
    change(tmp_path / "b")
    differences = diff_snapshots(
        tree_snapshot(tmp_path / "a", **OPTIONS), tree_snapshot(tmp_path / "b", **OPTIONS)
    )
    assert differences and any(word in d for d in differences), differences
    with pytest.raises(AssertionError, match="trees differ"):
        assert_same_tree(tmp_path / "a", tmp_path / "b", **OPTIONS)


def test_mtimes_and_ignore(tmp_path: Path) -> None:
    for side in "ab":
        (tmp_path / side).mkdir()
        (tmp_path / side / "f").write_bytes(b"x")
    os.utime(tmp_path / "b" / "f", ns=(1, 1))
    assert_same_tree(tmp_path / "a", tmp_path / "b")  # mtimes not asked for
    with pytest.raises(AssertionError, match="mtime_ns"):
        assert_same_tree(tmp_path / "a", tmp_path / "b", mtimes=True)
    assert_same_tree(tmp_path / "a", tmp_path / "b", {"f": ["mtime_ns"]}, mtimes=True)
