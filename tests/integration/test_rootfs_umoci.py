"""The rootfs apply_layers writes equals `umoci unpack`'s, entry for entry.

Images come from layer tarballs written here (every layer-application rule, in
each compression) and from a real buildah build. Both trees are compared by
path, type, full mode, owner, content, symlink target, hardlink group, mtime and
xattrs (see fixtures/trees.py). umoci 0.4.7 cannot read zstd layers: those
images are compared with umoci's unpacking of the gzip version of the same tars.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder_resource.oci.digest import VerifyingReader
from builder_resource.oci.rootfs import apply_layers
from fixtures.layer_tars import (
    device,
    directory,
    fifo,
    file,
    hardlink,
    layer_tar,
    layout_layers,
    opaque,
    symlink,
    whiteout,
    write_oci_layout,
)
from fixtures.tools import require
from fixtures.trees import assert_same_tree

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="umoci unpack without --rootless needs root"),
]

#: cap_net_raw+ep, as `setcap` writes it (vfs_cap_data revision 2)
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
COMPARE = {"owners": True, "mtimes": True, "dir_mtimes": True, "xattrs": True, "include_root": True}
#: Known differences, all in directory mtimes: directories no entry declares get
#: the time of unpacking from both tools; and where a whiteout removes the lower
#: children of a directory this layer wrote into, umoci leaves that directory with
#: the time of unpacking while we keep its header's mtime (deterministic output).
SCENARIO_IGNORE = {p: ["mtime_ns"] for p in ("implicit", "implicit/parent", "same")}


def scenario() -> list[bytes]:
    """Three layers exercising every rule of image-spec layer.md that umoci applies."""
    base = [
        directory("bin/"),
        directory("dev/"),
        directory("etc/"),
        directory("run/"),
        directory("usr/"),
        directory("usr/bin/"),
        directory("usr/lib/"),
        directory("tmp/", 0o1777),
        directory("shared/", 0o2775, gid=50),
        directory("home/"),
        directory("home/user/", 0o750, uid=1000, gid=1000),
        file("home/user/.profile", b"export A=1\n", 0o640, uid=1000, gid=1000),
        file("usr/bin/busybox", b"BB" * 5000, 0o755),
        symlink("bin/sh", "/usr/bin/busybox"),
        symlink("lib", "usr/lib"),
        symlink("usr/lib/up", "../bin"),
        symlink("dangling", "/no/such/file"),
        file("usr/bin/su", b"su", 0o4755),
        file("usr/bin/wall", b"wall", 0o2755, gid=5),
        file("usr/bin/ping", b"ping", 0o755, xattrs={"security.capability": CAPABILITY}),
        file(
            "usr/bin/tagged",
            b"t",
            0o644,
            xattrs={"user.origin": b"layer0", "user.bin": b"\x00\xff"},
        ),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        hardlink("etc/passwd-", "etc/passwd"),
        file("etc/shadow", b"root:*:1::::::\n", 0o000),
        file("etc/deleteme", b"bye"),
        directory("dir2file/"),
        file("dir2file/child", b"c"),
        directory("dir2file/sub/"),
        file("dir2file/sub/x", b"x"),
        file("file2dir", b"f"),
        directory("opq/"),
        file("opq/a", b"a"),
        directory("opq/sub/"),
        file("opq/sub/b", b"b"),
        file("opq/upper", b"old"),
        directory("tree/"),
        directory("tree/a/"),
        directory("tree/a/b/"),
        file("tree/a/b/c", b"c"),
        symlink("tree/l", "a/b"),
        directory("empty/"),
        directory("empty/nested/", 0o700),
        directory("data/"),
        file("data/f1", b"one"),
        hardlink("data/h1", "data/f1"),
        directory("same/"),
        file("same/lower", b"l"),
        fifo("run/fifo", 0o600),
        device("dev/null", 1, 3),
        device("dev/loop0", 7, 0, kind="block", mode=0o660),
        file("frac", b"", pax={"mtime": "1600000000.123456789"}),
        symlink("via-link", "usr"),
        file("via-link/through", b"written through an in-root symlink"),
    ]
    upper = [
        whiteout("etc/deleteme"),
        file("dir2file", b"a directory became this file"),
        directory("file2dir/"),
        file("file2dir/inner", b"a file became this directory"),
        directory("opq/", 0o700),
        file("opq/new", b"n"),
        file("opq/upper", b"new"),
        opaque("opq"),  # after this layer's children: they stay
        whiteout("tree"),
        hardlink("data/h2", "data/f1"),  # to a lower layer's file
        file("etc/passwd", b"root:x:0:0::/root:/bin/ash\n"),  # passwd- keeps the old inode
        directory("home/user/", 0o700, uid=1001, gid=1001, mtime=1_700_000_000),
        symlink("bin/sh", "busybox-2"),
        file("shared/new", b"n", gid=50),
        file("same/upper", b"u"),
        whiteout("same"),  # after a same-layer entry: only lower content goes
        file("usr/bin/tagged", b"t2", 0o644, xattrs={"user.origin": b"layer1"}),
        opaque("not-there"),
        whiteout("not-there-either"),
    ]
    top = [
        directory("tree/", 0o711),
        file("tree/again", b"a"),
        whiteout("data/f1"),  # h1 and h2 keep the content
        symlink("usr/bin/link", "su"),
        hardlink("usr/bin/su2", "usr/bin/su"),
        hardlink("usr/bin/sh-link", "bin/sh"),  # a hardlink to a symlink
        file("implicit/parent/f", b"no directory entries above me"),
        directory("empty2/"),
        directory("dir2file/"),  # and back to a directory
        directory("./", 0o755, mtime=1_650_000_000),
    ]
    return [layer_tar(entries) for entries in (base, upper, top)]


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    result = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", os.fspath(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return bundle / "rootfs"


def verified_openers(layout: Path, tag: str) -> list:
    """Openers of each layer blob through a VerifyingReader, as get will use them."""

    def opener(layer: dict) -> object:
        return lambda: contextlib.closing(
            VerifyingReader(open(layer["path"], "rb"), layer["digest"], layer["size"])
        )

    return [opener(layer) for layer in layout_layers(layout, tag)]


COMPRESSIONS = {
    "none": ["none"] * 3,
    "gzip": ["gzip"] * 3,
    "zstd": ["zstd"] * 3,
    "mixed": ["gzip", "zstd", "none"],
}


@pytest.fixture(scope="module")
def scenario_umoci(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Path]:
    """umoci's rootfs of the scenario, from gzip layers (0.4.7 reads no zstd)."""
    require("umoci")
    base = tmp_path_factory.mktemp("umoci")
    layers = scenario()
    write_oci_layout(base / "layout", layers, "gzip", tag="gzip")
    return layers, umoci_unpack(base / "layout", "gzip", base / "bundle")


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_scenario_equals_umoci(
    scenario_umoci: tuple[list[bytes], Path], tmp_path: Path, compression: str
) -> None:
    layers, expected = scenario_umoci
    write_oci_layout(tmp_path / "layout", layers, COMPRESSIONS[compression], tag="t")
    if "zstd" not in COMPRESSIONS[compression]:
        # where umoci can read the very same blobs, it reads them too
        expected = umoci_unpack(tmp_path / "layout", "t", tmp_path / "bundle")
    apply_layers(verified_openers(tmp_path / "layout", "t"), tmp_path / "ours")
    snap = assert_same_tree(expected, tmp_path / "ours", SCENARIO_IGNORE, **COMPARE)

    # what the comparison covered really is there
    assert snap["dir2file"]["type"] == "dir" and snap["file2dir/inner"]["type"] == "file"
    assert "etc/deleteme" not in snap and "tree/a" not in snap and "same/lower" not in snap
    assert sorted(k for k in snap if k.startswith("opq/")) == ["opq/new", "opq/upper"]
    assert snap["data/h1"]["hardlinks"] == ["data/h1", "data/h2"]
    assert snap["usr/bin/su2"]["hardlinks"] == ["usr/bin/su", "usr/bin/su2"]
    assert snap["usr/bin/su"]["mode"] == oct(0o104755) and snap["tmp"]["mode"] == oct(0o41777)
    assert snap["usr/bin/ping"]["xattrs"] == {"security.capability": CAPABILITY.hex()}
    assert snap["dev/null"]["type"] == "char" and snap["home/user"]["uid"] == 1001
    assert snap["empty/nested"]["type"] == "dir" and snap["bin/sh"]["target"] == "busybox-2"


def test_comparison_would_fail(scenario_umoci: tuple[list[bytes], Path], tmp_path: Path) -> None:
    """The same comparison, after one small change to our tree, fails."""
    layers, expected = scenario_umoci
    ours = tmp_path / "ours"
    apply_layers([io.BytesIO(data) for data in layers], ours)
    assert_same_tree(expected, ours, SCENARIO_IGNORE, **COMPARE)
    os.chmod(ours / "usr/bin/su", 0o755)
    with pytest.raises(AssertionError, match="usr/bin/su: mode"):
        assert_same_tree(expected, ours, SCENARIO_IGNORE, **COMPARE)


CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "\
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin /etc /data/empty /data/tree/a/b /tmp /var/tmp && \
/bin/busybox --install -s && \
echo hello > /data/a && ln /data/a /data/b && ln /data/a /data/keep && \
chown 1000:100 /data/a && chmod 4755 /data/a && \
chmod 2755 /data/tree && chmod 1777 /tmp /var/tmp && echo gone > /etc/gone && \
ln -s ../data/a /etc/rel && ln -s /data/tree/a /etc/abs && echo c > /data/tree/a/b/c && \
mkdir /data/d2f /data/f2d && echo x > /data/d2f/x && echo y > /data/f2d.f"]
RUN ["/bin/sh", "-c", "rm /etc/gone && rm -r /data/tree && rm -r /data/d2f && \
echo f > /data/d2f && ln /data/a /data/c && mkdir /data/f2d.f.d && \
echo z > /data/empty2 && rm /data/empty2"]
RUN ["/bin/sh", "-c", "rm /data/a && chmod 700 /data/empty"]
"""


@pytest.fixture(scope="module")
def buildah_layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An image built by buildah (vfs, chroot isolation) from busybox-static, pushed
    to an OCI layout. Its storage is private to this test, so nothing is shared
    with other users of buildah on the machine."""
    require("buildah", "umoci")
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("no busybox to build from")
    base = tmp_path_factory.mktemp("buildah")
    context = base / "context"
    context.mkdir()
    shutil.copy(busybox, context / "busybox")
    (context / "Containerfile").write_text(CONTAINERFILE)
    storage = [
        "buildah",
        "--root",
        os.fspath(base / "storage"),
        "--runroot",
        os.fspath(base / "run"),
        "--storage-driver",
        "vfs",
    ]
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
    try:
        for cmd in (
            [
                *storage,
                "build",
                "--isolation",
                "chroot",
                "--layers",
                "-q",
                "-t",
                "localhost/x:1",
                os.fspath(context),
            ],
            [*storage, "push", "-q", "localhost/x:1", f"oci:{base / 'layout'}:x"],
        ):
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            assert result.returncode == 0, result.stderr
        yield base / "layout"
    finally:
        subprocess.run([*storage, "rmi", "-a", "-f"], capture_output=True, check=False)
        shutil.rmtree(base / "storage", ignore_errors=True)


def test_buildah_image_equals_umoci(buildah_layout: Path, tmp_path: Path) -> None:
    expected = umoci_unpack(buildah_layout, "x", tmp_path / "bundle")
    apply_layers(verified_openers(buildah_layout, "x"), tmp_path / "ours")
    snap = assert_same_tree(expected, tmp_path / "ours", **COMPARE)

    assert len(layout_layers(buildah_layout, "x")) == 4
    assert "etc/gone" not in snap and "data/tree" not in snap and "data/a" not in snap
    # a hardlink group whose first name is deleted later; a link made in a later
    # RUN is stored by buildah as a copy (a layer cannot link to a lower one)
    assert snap["data/b"]["hardlinks"] == ["data/b", "data/keep"]
    assert (
        "hardlinks" not in snap["data/c"] and snap["data/c"]["sha256"] == snap["data/b"]["sha256"]
    )
    assert snap["data/b"]["mode"] == oct(0o104755) and snap["data/b"]["uid"] == 1000
    assert snap["data/d2f"]["type"] == "file" and snap["data/f2d.f.d"]["type"] == "dir"
    assert snap["tmp"]["mode"] == oct(0o41777) and snap["data/empty"]["mode"] == oct(0o40700)
    assert snap["bin/sh"]["type"] == "symlink" and snap["bin/sh"]["target"] == "/bin/busybox"
    assert snap["etc/rel"]["target"] == "../data/a"
