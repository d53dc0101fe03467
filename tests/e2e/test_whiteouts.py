"""A build whose image archive has a layer deleting a file and a layer replacing
a directory (opaque whiteout): get's rootfs shows the applied result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fixtures.concourse import Concourse

pytestmark = pytest.mark.e2e

# Written into the build context and run by the build command: it writes an
# oci-archive by hand, as a builder would, into release/layers.tar.
MAKE_IMAGE = r"""
import gzip, hashlib, io, json, sys, tarfile

def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()

lower = layer([
    ("data", "dir", b""), ("data/old", "file", b"old"), ("data/sub", "dir", b""),
    ("data/sub/older", "file", b"older"), ("gone", "file", b"bye"),
    ("swap-a", "file", b"a file"), ("swap-b", "dir", b""), ("swap-b/x", "file", b"x"),
])
upper = layer([
    ("data", "dir", b""), ("data/.wh..wh..opq", "file", b""), ("data/new", "file", b"new"),
    (".wh.gone", "file", b""), ("swap-a", "dir", b""), ("swap-a/inner", "file", b"in"),
    ("swap-b", "file", b"now a file"),
])
blobs = {}
def put(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}

gz = gzip.compress(lower, mtime=0)
config = json.dumps({
    "architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"], "User": "0:0"},
    "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + hashlib.sha256(lower).hexdigest(),
        "sha256:" + hashlib.sha256(upper).hexdigest()]},
}).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(gz)},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(upper)},
    ],
}).encode()
index = json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest)}]}).encode()
with tarfile.open(sys.argv[1], "w") as tar:
    def add(name, data):
        info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for digest, data in blobs.items():
        add("blobs/sha256/" + digest[7:], data)
"""


def test_whiteouts_and_replaced_directories(concourse: Concourse, tmp_path: Path) -> None:
    sources = tmp_path / "put"
    (sources / "src").mkdir(parents=True)
    (sources / "src" / "make_image.py").write_text(MAKE_IMAGE)
    source = {"repository": str(tmp_path / "store")}
    command = f"mkdir -p release && {Path(sys.executable).name} make_image.py release/layers.tar"
    put = concourse.put(source, {"context": "src", "command": command}, sources)
    assert put.returncode == 0, put.stderr

    dest = tmp_path / "get"
    get = concourse.get(source, put.json["version"], {"rootfs": True}, dest)
    assert get.returncode == 0, get.stderr
    root = dest / "images" / "layers" / "rootfs"
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == ["data", "data/new", "swap-a", "swap-a/inner", "swap-b"]
    assert (root / "swap-b").read_text() == "now a file"
    assert (root / "data" / "new").read_text() == "new"
