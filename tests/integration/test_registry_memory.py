"""Blobs stream: pushing and pulling a 300 MiB blob keeps the process's peak RSS
far below the blob's size. Each direction runs in its own subprocess, which
reports its peak and throughput.

The peak is the child's ``VmHWM`` (reset with ``/proc/self/clear_refs`` once the
imports are done, so it covers the transfer alone). ``ru_maxrss`` is no use
here: Linux carries the high-water mark across exec, so a child's ``ru_maxrss``
(and the parent's ``RUSAGE_CHILDREN``) starts at the RSS of the pytest process
it was forked from."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.registry import start_registry

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

MiB = 1 << 20
SIZE = 300 * MiB
LIMIT = 120  # MiB of peak RSS allowed, for a 300 MiB blob

CHILD = r"""
import json, sys, time
from pathlib import Path
from builder_resource.oci.blobs import FileSection
from builder_resource.store.registry import RegistryStore

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB

def peak():
    return status("VmHWM")

direction, repository, path, size, digest = sys.argv[1:]
size = int(size)
store = RegistryStore(repository, insecure=True)
store.blob_exists(digest)  # connect first: the figures are for the transfer alone
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
started = time.monotonic()
if direction == "push":
    store.push_blob(FileSection(Path(path), 0, size, digest))
else:
    with store.open_blob(digest, size) as stream, open(path, "wb") as out:
        while data := stream.read(1 << 20):
            out.write(data)
seconds = time.monotonic() - started
print(json.dumps({"before": before, "peak": peak(), "seconds": seconds}))
"""


@pytest.fixture(scope="module")
def big_registry(tmp_path_factory):
    """Its own registry, so that the 300 MiB it stores go when the test ends."""
    workdir = tmp_path_factory.mktemp("registry-big")
    running = start_registry(workdir)
    yield running
    running.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def write_blob(path: Path, size: int) -> str:
    """Incompressible content, cheaply: one random MiB, numbered per MiB."""
    digest = hashlib.sha256()
    base = os.urandom(MiB)
    with open(path, "wb") as out:
        for i in range(size // MiB):
            chunk = i.to_bytes(8, "big") + base[8:]
            digest.update(chunk)
            out.write(chunk)
    return "sha256:" + digest.hexdigest()


def run_child(*args: str) -> dict:
    resource_dir = Path(__file__).resolve().parents[2] / "resource"
    env = {**os.environ, "PYTHONPATH": str(resource_dir)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_big_blob_streams_with_flat_memory(big_registry, tmp_path, record_property):
    source, target = tmp_path / "blob", tmp_path / "pulled"
    digest = write_blob(source, SIZE)
    repository = big_registry.repository("tests/big")
    try:
        push = run_child("push", repository, str(source), str(SIZE), digest)
        pull = run_child("pull", repository, str(target), str(SIZE), digest)
        assert target.stat().st_size == SIZE
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
    figures = {
        "push_peak_rss_mib": round(push["peak"], 1),
        "push_rss_before_mib": round(push["before"], 1),
        "push_mib_per_s": round(SIZE / MiB / push["seconds"], 1),
        "pull_peak_rss_mib": round(pull["peak"], 1),
        "pull_rss_before_mib": round(pull["before"], 1),
        "pull_mib_per_s": round(SIZE / MiB / pull["seconds"], 1),
    }
    for key, value in figures.items():
        record_property(key, value)
    log.info("300 MiB blob through the registry store: %s", figures)
    assert push["peak"] < LIMIT, figures
    assert pull["peak"] < LIMIT, figures
    # the transfer itself adds only buffers, whatever the blob's size
    assert push["peak"] - push["before"] < 20, figures
    assert pull["peak"] - pull["before"] < 20, figures
