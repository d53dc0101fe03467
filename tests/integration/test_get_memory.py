"""get streams: writing the tarball and applying the rootfs from the same download,
with the layer's data ahead in bounded queues only, keeps the peak RSS flat
whatever the layer's size. The get runs in a subprocess that reports its peak
(``VmHWM``, reset once the imports are done, as in test_registry_memory)."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from builder_resource.oci.archive_read import read_image_archive
from builder_resource.oci.blobs import BytesBlob
from builder_resource.oci.prepare import prepare_image
from builder_resource.publish import publish
from builder_resource.release import FilesLayer, Release, ReleaseImage, encode
from builder_resource.store.layout import LayoutStore
from fixtures.archives import digest, write_oci_archive

pytestmark = pytest.mark.integration

MiB = 1 << 20
SIZE = 96 * MiB
#: what the get may add to the RSS it has after its imports, whatever the layer size
GROWTH_LIMIT = 30

CHILD = r"""
import json, sys
from pathlib import Path
from builder_resource import get

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

store, tag, index, dest = sys.argv[1:]
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
payload = {"source": {"repository": store}, "version": {"tag": tag, "digest": index},
           "params": {"rootfs": True}}
get.run(payload, Path(dest), {})
print(json.dumps({"before": before, "peak": status("VmHWM")}))
"""


def _big_layer() -> bytes:
    """One incompressible file of SIZE bytes (one random MiB, numbered per MiB)."""
    base = os.urandom(MiB)
    body = b"".join(i.to_bytes(8, "big") + base[8:] for i in range(SIZE // MiB))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data/big.bin")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_a_rootfs_get_keeps_memory_flat(tmp_path: Path, record_property) -> None:  # noqa: ANN001
    write_oci_archive(tmp_path / "big.tar", [_big_layer()])
    image = prepare_image(read_image_archive(tmp_path / "big.tar"), tmp_path)  # type: ignore[arg-type]
    files_tar = io.BytesIO()
    with tarfile.open(fileobj=files_tar, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("release"))
    raw = files_tar.getvalue()
    files = FilesLayer(BytesBlob(gzip.compress(raw, mtime=0)), digest(raw), 0, 0)
    store = tmp_path / "store"
    index = publish(
        LayoutStore(store), encode(Release((ReleaseImage("big", "big.tar", image),), files)), "1"
    )
    (tmp_path / "big.tar").unlink()
    resource_dir = Path(__file__).resolve().parents[2] / "resource"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(store), "1", index, str(tmp_path / "dest")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(resource_dir)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    record_property("get_rootfs_peak_rss_mib", round(figures["peak"], 1))
    assert (tmp_path / "dest/images/big/rootfs/data/big.bin").stat().st_size == SIZE
    assert figures["peak"] - figures["before"] < GROWTH_LIMIT, figures
