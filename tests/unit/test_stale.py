"""What a killed put leaves behind is cleared by the next one, once it is old
enough that no live run can own it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from builder_resource.stale import STALE_AFTER, remove_stale
from builder_resource.store.layout import LayoutStore


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_only_old_matches_go(tmp_path: Path) -> None:
    old_dir, new_dir = tmp_path / "builder-put-old", tmp_path / "builder-put-new"
    for d in (old_dir, new_dir):
        (d / "inner").mkdir(parents=True)
        (d / "inner" / "f").write_text("x")
    other = tmp_path / "someone-elses"
    other.mkdir()
    age(old_dir, STALE_AFTER + 60)
    age(other, STALE_AFTER + 60)
    assert remove_stale(tmp_path, "builder-put-*") == 1
    assert not old_dir.exists() and new_dir.exists() and other.exists()


def test_the_layout_store_clears_old_temporaries_on_its_first_write(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    store.push_manifest(b"{}", "application/vnd.oci.image.manifest.v1+json", "a")
    blobs = tmp_path / "store" / "blobs" / "sha256"
    old, fresh = blobs / ".tmp-killed", blobs / ".tmp-live"
    old.write_bytes(b"half a blob")
    fresh.write_bytes(b"a live upload")
    age(old, STALE_AFTER + 1)
    LayoutStore(tmp_path / "store").push_manifest(
        b"{}", "application/vnd.oci.image.manifest.v1+json", "b"
    )
    assert not old.exists() and fresh.exists()

