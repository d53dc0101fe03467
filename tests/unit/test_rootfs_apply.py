"""Layer application semantics that the umoci comparison cannot show on its own:
how streams are read (and verified), and the ordering rules of whiteouts."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
from pathlib import Path

import pytest
import zstandard

from builder_resource.errors import DigestMismatchError, ImageError
from builder_resource.oci.digest import VerifyingReader
from builder_resource.oci.rootfs import apply_layer, apply_layers
from fixtures.layer_tars import (
    compress,
    directory,
    file,
    hardlink,
    layer_tar,
    opaque,
    sha256,
    symlink,
    whiteout,
)


def names(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    )


def test_whiteout_never_hides_the_same_layer(tmp_path: Path) -> None:
    apply_layers(
        [
            io.BytesIO(layer_tar([file("a", b"lower"), directory("d/"), file("d/lower")])),
            io.BytesIO(
                layer_tar(
                    [
                        whiteout("a"),
                        file("a", b"upper"),  # after its whiteout
                        file("d/upper"),
                        opaque("d"),  # after this layer's child
                        file("b", b"b"),
                        whiteout("b"),  # names a same-layer file: nothing to do
                    ]
                )
            ),
        ],
        tmp_path / "r",
    )
    assert (tmp_path / "r/a").read_bytes() == b"upper"
    assert names(tmp_path / "r") == ["a", "b", "d", "d/upper"]


def test_empty_layers(tmp_path: Path) -> None:
    empty_tar = layer_tar([])
    apply_layers(
        [
            io.BytesIO(b""),  # Go's archive/tar reads no entries from nothing
            io.BytesIO(empty_tar),
            io.BytesIO(gzip.compress(empty_tar)),
            io.BytesIO(layer_tar([file("f")])),
        ],
        tmp_path / "r",
    )
    assert names(tmp_path / "r") == ["f"]


def test_verifying_reader_is_read_to_the_end(tmp_path: Path) -> None:
    """The tar ends before the blob does (zero padding); the digest is only
    checked at EOF, so the whole blob must be read."""
    blob = gzip.compress(layer_tar([file("f", b"x")]) + bytes(64 * 1024))
    good = VerifyingReader(io.BytesIO(blob), sha256(blob), len(blob))
    apply_layers([lambda: contextlib.closing(good)], tmp_path / "ok")
    assert (tmp_path / "ok/f").read_bytes() == b"x"

    bad = VerifyingReader(io.BytesIO(blob), sha256(b"other"), len(blob))
    with pytest.raises(DigestMismatchError):
        apply_layers([lambda: contextlib.closing(bad)], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # created by the call, removed again


def test_openers_are_opened_one_at_a_time_and_closed(tmp_path: Path) -> None:
    log: list[str] = []

    def opener(i: int, data: bytes):  # type: ignore[no-untyped-def]
        @contextlib.contextmanager
        def cm():  # type: ignore[no-untyped-def]
            log.append(f"open {i}")
            yield io.BytesIO(data)
            log.append(f"close {i}")

        return cm

    layers = [layer_tar([file(f"f{i}")]) for i in range(3)]
    apply_layers([opener(i, compress(d, "zstd")) for i, d in enumerate(layers)], tmp_path / "r")
    assert log == ["open 0", "close 0", "open 1", "close 1", "open 2", "close 2"]


def test_trailing_frames_are_never_silently_dropped(tmp_path: Path) -> None:
    """A zstd blob of two frames holds the whole tar: apply it all, or refuse."""
    tar = layer_tar([file("a", b"a" * 10000), file("b", b"b" * 10000)])
    cut = 2048
    blob = zstandard.ZstdCompressor().compress(tar[:cut]) + zstandard.ZstdCompressor().compress(
        tar[cut:]
    )
    try:
        apply_layers([io.BytesIO(blob)], tmp_path / "r")
    except ImageError as e:
        assert "layer 0" in str(e)
    else:
        assert (tmp_path / "r/b").read_bytes() == b"b" * 10000


def test_rejects_a_non_empty_target(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r/x").write_bytes(b"")
    with pytest.raises(ValueError, match="not empty"):
        apply_layers([io.BytesIO(layer_tar([file("f")]))], tmp_path / "r")
    assert (tmp_path / "r/x").exists()


def test_apply_layer_onto_an_existing_tree(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layers([io.BytesIO(layer_tar([directory("d/"), file("d/a"), file("d/b")]))], root)
    apply_layer(io.BytesIO(layer_tar([whiteout("d/a"), file("d/c")])), root, index=1)
    assert names(root) == ["d", "d/b", "d/c"]


def test_replacements_and_attributes(tmp_path: Path) -> None:
    root = tmp_path / "r"
    apply_layers(
        [
            io.BytesIO(
                layer_tar(
                    [
                        directory("d/", 0o755, mtime=1000),
                        file("d/x"),
                        file("f", b"old"),
                        hardlink("g", "f"),
                        symlink("s", "f"),
                        directory("tree/"),
                        file("tree/deep"),
                    ]
                )
            ),
            io.BytesIO(
                layer_tar(
                    [
                        directory("d/", 0o2750, mtime=2000),  # dir over dir: kept, updated
                        file("f", b"new"),  # unlinked first: g keeps the old content
                        directory("s/"),  # a symlink becomes a directory
                        symlink("tree", "d"),  # a tree becomes a symlink
                    ]
                )
            ),
        ],
        root,
    )
    st = os.lstat(root / "d")
    assert stat.S_IMODE(st.st_mode) == 0o2750 and st.st_mtime == 2000
    assert (root / "d/x").exists()
    assert (root / "f").read_bytes() == b"new" and (root / "g").read_bytes() == b"old"
    assert (root / "s").is_dir() and not (root / "s").is_symlink()
    assert os.readlink(root / "tree") == "d"


@pytest.mark.skipif(os.geteuid() != 0, reason="security.* xattrs need root")
def test_xattrs_applied_but_never_selinux_labels(tmp_path: Path) -> None:
    xattrs = {"user.kept": b"\x00\xff", "security.selinux": b"system_u:object_r:evil_t:s0"}
    apply_layers(
        [io.BytesIO(layer_tar([file("f", b"x", xattrs=xattrs), directory("d/", xattrs=xattrs)]))],
        tmp_path / "r",
    )
    for name in ("f", "d"):
        path = tmp_path / "r" / name
        assert os.getxattr(path, "user.kept") == b"\x00\xff"
        assert "security.selinux" not in os.listxattr(path)
