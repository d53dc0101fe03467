"""The local OCI image-layout store."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from builder_resource.errors import DigestMismatchError, NotFoundError, StoreError
from builder_resource.oci import media_types as mt
from builder_resource.oci.blobs import BytesBlob, FileSection
from builder_resource.store.layout import LayoutStore


def test_blobs_manifests_and_tags(tmp_path: Path) -> None:
    store = LayoutStore("file://" + str(tmp_path / "s"))
    assert store.list_tags() == [] and store.resolve_tag("1") is None
    blob = BytesBlob(b"content")
    assert not store.blob_exists(blob.digest)
    store.push_blob(blob)
    store.push_blob(blob)  # already there: nothing happens
    assert store.blob_exists(blob.digest)
    with store.open_blob(blob.digest, blob.size) as reader:
        assert reader.read() == b"content"
    manifest = json.dumps({"mediaType": mt.OCI_INDEX, "manifests": []}).encode()
    digest = store.push_manifest(manifest, mt.OCI_INDEX, "1.0")
    assert store.resolve_tag("1.0") == digest
    assert store.get_manifest("1.0") == (manifest, mt.OCI_INDEX)
    assert store.get_manifest(digest) == (manifest, mt.OCI_INDEX)
    layout = json.loads((tmp_path / "s" / "oci-layout").read_text())
    assert layout == {"imageLayoutVersion": "1.0.0"}
    with pytest.raises(NotFoundError, match="tag 2.0 not found"):
        store.get_manifest("2.0")
    with pytest.raises(NotFoundError):
        store.open_blob("sha256:" + "0" * 64).__enter__()


def test_a_blob_that_lies_about_its_digest_is_refused(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "s")
    (tmp_path / "f").write_bytes(b"actual bytes")
    liar = FileSection(tmp_path / "f", 0, 12, "sha256:" + "1" * 64)
    with pytest.raises(StoreError, match="arrived as"):
        store.push_blob(liar)
    assert not store.blob_exists(liar.digest)
    assert not [p for p in (tmp_path / "s/blobs/sha256").iterdir()]


def test_reads_are_verified(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "s")
    blob = BytesBlob(b"original")
    store.push_blob(blob)
    path = tmp_path / "s/blobs/sha256" / blob.digest[7:]
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(DigestMismatchError), store.open_blob(blob.digest, blob.size) as reader:
        reader.read()


def test_concurrent_tags_are_all_kept(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "s")

    def tag(n: int) -> None:
        LayoutStore(tmp_path / "s").push_manifest(
            json.dumps({"n": n}).encode(), mt.OCI_MANIFEST, f"v{n}"
        )

    threads = [threading.Thread(target=tag, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.list_tags()) == sorted(f"v{n}" for n in range(16))


def test_relative_paths_are_refused() -> None:
    with pytest.raises(StoreError, match="absolute path"):
        LayoutStore("relative/dir")


def test_a_layout_store_says_whether_a_push_would_be_accepted(tmp_path: Path) -> None:
    LayoutStore(tmp_path / "new" / "store").check_push()  # creatable: fine
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):
        pytest.skip("root may write anywhere: the refusal shows only for other users")
    with pytest.raises(StoreError, match="not writable"):
        LayoutStore(locked / "store").check_push()
