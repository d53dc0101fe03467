"""get moves each blob once: into its place in the image archive, while the rootfs
is applied from the same bytes as they arrive. These tests hold it to the
invariants: a blob that fails verification anywhere in the pipeline fails the get
and leaves nothing; an error in one layer stops the downloads still running; two
gets give identical trees and tarballs; and the pipelined archive is byte for byte
the one the plain, sequential path writes."""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from builder_resource import get
from builder_resource.errors import DigestMismatchError, ImageError, StoreError
from builder_resource.oci.archive_read import read_image_archive
from builder_resource.oci.archive_write import plan_image, write_image, write_slot
from builder_resource.oci.blobs import BytesBlob
from builder_resource.oci.manifest import ImageManifest
from builder_resource.oci.prepare import prepare_image
from builder_resource.publish import publish
from builder_resource.release import FilesLayer, Release, ReleaseImage, encode
from builder_resource.store.layout import LayoutStore
from fixtures.archives import digest, write_oci_archive
from fixtures.trees import tree_snapshot

MiB = 1 << 20


def _layer(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            tar.addfile(tarfile.TarInfo(name))
    return buf.getvalue()


RNG = random.Random(6)
LAYERS = [
    _layer({f"usr/share/doc/f{i:03}.txt": f"file {i}\n".encode() * 50 for i in range(200)}),
    _layer({"data/random.bin": RNG.randbytes(3 * MiB), "etc/keep": b"kept\n"}),
    _layer({"etc/late": b"late\n"}, whiteouts=("data/.wh.random.bin",)),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A layout store holding one version: image ``app`` (three gzip layers, the
    second of several MiB) and a files artifact."""
    tmp = tmp_path_factory.mktemp("get-pipeline")
    write_oci_archive(tmp / "app.tar", LAYERS, dual=True, docker_types=True)
    image = prepare_image(read_image_archive(tmp / "app.tar"), tmp)  # type: ignore[arg-type]
    files_tar = _layer({"release/notes.txt": b"notes\n"})
    files = FilesLayer(BytesBlob(gzip.compress(files_tar, mtime=0)), digest(files_tar), 1, 6)
    release = Release((ReleaseImage("app", "app.tar", image, ("app:1",)),), files)
    store_dir = tmp / "store"
    index = publish(LayoutStore(store_dir), encode(release), "1.0.0")
    return {"store": store_dir, "version": {"tag": "1.0.0", "digest": index}, "image": image}


def _copy_store(stored: dict[str, Any], tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    os.system(f"cp -a {stored['store']} {copy}")  # noqa: S605 - test paths only
    return copy


def _run(
    store_dir: Path,
    version: dict[str, str],
    params: dict[str, Any],
    dest: Path,
    monkeypatch: pytest.MonkeyPatch | None = None,
    wrap: Any = None,
) -> dict[str, Any]:
    if wrap is not None:
        assert monkeypatch is not None
        inner = LayoutStore(store_dir)
        monkeypatch.setattr(get, "open_store", lambda **settings: wrap(inner))
    payload = {"source": {"repository": str(store_dir)}, "version": version, "params": params}
    return get.run(payload, dest, {})


def _layer_blob(stored: dict[str, Any], store_dir: Path, n: int) -> Path:
    return store_dir / "blobs/sha256" / stored["image"].manifest.layers[n].digest[7:]


# --- the archive plan -------------------------------------------------------------------


def _tarfile_oracle(path: Path, fmt: str, manifest: ImageManifest, blobs: dict[str, bytes]) -> None:
    """The archive as tarfile writes it in stream mode: what write_image always wrote."""
    import json

    from builder_resource.oci import media_types as mt
    from builder_resource.oci.descriptor import Descriptor, canonical_json

    def add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.mode = 0, mode
        if data is None:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    own = Descriptor(manifest.media_type, digest(manifest.raw), len(manifest.raw))
    entry = own.to_json()
    entry["annotations"] = {"org.opencontainers.image.ref.name": "app:1"}
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]})
    members = {own.digest: manifest.raw, **blobs}
    with (
        open(path, "wb") as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        add(tar, "blobs", None, 0o755)
        add(tar, "blobs/sha256", None, 0o755)
        for d in sorted(members):
            add(tar, "blobs/sha256/" + d[7:], members[d], 0o444)
        add(tar, "index.json", index, 0o644)
        if fmt == "docker":
            docker = [
                {
                    "Config": "blobs/sha256/" + manifest.config.digest[7:],
                    "RepoTags": ["app:1"],
                    "Layers": ["blobs/sha256/" + d.digest[7:] for d in manifest.layers],
                }
            ]
            add(tar, "manifest.json", json.dumps(docker, separators=(",", ":")).encode(), 0o644)
        add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_planned_archive_is_what_tarfile_writes_in_any_blob_order(
    stored: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    store = LayoutStore(stored["store"])
    manifest = stored["image"].manifest
    blobs = {}
    for d in [manifest.config, *manifest.layers]:
        with store.open_blob(d.digest, d.size) as f:
            blobs[d.digest] = f.read()
    _tarfile_oracle(tmp_path / "oracle.tar", fmt, manifest, blobs)
    planned = plan_image(tmp_path / "planned.tar", fmt, manifest, ("app:1",))
    planned.create()
    for slot in reversed(planned.slots):  # any order gives the same bytes
        write_slot(slot, io.BytesIO(blobs[slot.descriptor.digest]))
    assert (tmp_path / "planned.tar").read_bytes() == (tmp_path / "oracle.tar").read_bytes()
    assert planned.size == (tmp_path / "oracle.tar").stat().st_size


def test_planned_layout_directory(stored: dict[str, Any], tmp_path: Path) -> None:
    store = LayoutStore(stored["store"])
    manifest = stored["image"].manifest
    out = tmp_path / "layout"
    write_image(out, "oci-layout", manifest, lambda d: store.open_blob(d.digest, d.size))
    names = sorted(p.name for p in (out / "blobs/sha256").iterdir())
    wanted = [manifest.config, *manifest.layers]
    assert names == sorted({d.digest[7:] for d in wanted} | {digest(manifest.raw)[7:]})
    for d in wanted:
        assert digest((out / "blobs/sha256" / d.digest[7:]).read_bytes()) == d.digest
    assert (out / "oci-layout").is_file() and (out / "index.json").is_file()


def test_a_short_blob_fails_the_plain_path(stored: dict[str, Any], tmp_path: Path) -> None:
    manifest = stored["image"].manifest
    planned = plan_image(tmp_path / "x.tar", "oci", manifest)
    planned.create()
    with pytest.raises(DigestMismatchError, match="shorter"):
        write_slot(planned.slots[0], io.BytesIO(b"too short"))


# --- get: once, in parallel, from the same bytes ----------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"rootfs": True},
        {"format": "oci"},
        {"format": "oci-layout"},
        {"rootfs": True, "format": "oci-layout"},
    ],
)
def test_two_gets_give_identical_trees_and_tarballs(
    stored: dict[str, Any], tmp_path: Path, params: dict[str, Any]
) -> None:
    trees, roots = [], []
    for n in (1, 2):
        dest = tmp_path / f"get{n}"
        _run(stored["store"], stored["version"], params, dest)
        trees.append(tree_snapshot(dest))
        if params.get("rootfs"):  # file times too (directories no entry describes get "now")
            root = dest / "images/app/rootfs"
            roots.append(tree_snapshot(root, mtimes=True, include_root=True))
    assert trees[0] == trees[1]
    assert roots[:1] == roots[1:]
    assert "release/notes.txt" in trees[0]
    if params.get("rootfs"):
        root = tmp_path / "get1/images/app/rootfs"
        assert (root / "etc/keep").read_bytes() == b"kept\n"
        assert (root / "etc/late").read_bytes() == b"late\n"
        assert not (root / "data/random.bin").exists()  # the whiteout of layer 2
        assert len(list((root / "usr/share/doc").iterdir())) == 200
        assert (tmp_path / "get1/images/app/metadata.json").is_file()


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_the_pipelined_tarball_is_the_plain_paths(
    stored: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    """Downloaded side by side and applied while arriving, or read one blob after
    another by write_image: the same bytes."""
    store = LayoutStore(stored["store"])
    plain = tmp_path / "plain.tar"
    manifest = stored["image"].manifest
    write_image(plain, fmt, manifest, lambda d: store.open_blob(d.digest, d.size), ("app:1",))
    for params in ({"rootfs": True, "format": fmt}, {"format": fmt}):
        dest = tmp_path / ("rootfs" if "rootfs" in params else "only")
        _run(stored["store"], stored["version"], params, dest)
        assert (dest / "release/app.tar").read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("rootfs", [True, False])
@pytest.mark.parametrize("layer", [0, 2])
def test_a_blob_failing_verification_fails_the_get_and_leaves_nothing(
    stored: dict[str, Any], tmp_path: Path, rootfs: bool, layer: int
) -> None:
    store_dir = _copy_store(stored, tmp_path)
    victim = _layer_blob(stored, store_dir, layer)
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, wrong digest: found only at the end
    victim.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises((DigestMismatchError, ImageError)) as caught:
        _run(store_dir, stored["version"], {"rootfs": rootfs}, dest)
    if not rootfs:
        assert isinstance(caught.value, DigestMismatchError)
    assert list(dest.iterdir()) == []  # no staging folder, no tag, no half rootfs


class _Watched:
    """A store stream that is slow and counts what was read of it."""

    def __init__(self, stream: Any, counter: dict[str, int], key: str, delay: float) -> None:
        self._stream, self._counter, self._key, self._delay = stream, counter, key, delay

    def readinto(self, buffer: Any) -> int:
        time.sleep(self._delay)
        n = self._stream.readinto(buffer)
        self._counter[self._key] = self._counter.get(self._key, 0) + n
        return n

    def read(self, n: int = -1) -> bytes:
        time.sleep(self._delay)
        data = self._stream.read(n)
        self._counter[self._key] = self._counter.get(self._key, 0) + len(data)
        return data


class _Wrapped:
    """A store whose blob streams are slow (``delay`` per read) for ``slow``
    digests, or break with a StoreError after ``break_after`` bytes of ``broken``."""

    def __init__(
        self,
        inner: LayoutStore,
        slow: set[str],
        delay: float,
        broken: str | None = None,
        break_after: int = 0,
    ) -> None:
        self.inner, self.slow, self.delay = inner, slow, delay
        self.broken, self.break_after = broken, break_after
        self.read: dict[str, int] = {}
        self.opened: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def open_blob(self, digest_: str, size: int | None = None) -> Iterator[Any]:
        self.opened.append(digest_)
        with self.inner.open_blob(digest_, size) as stream:
            delay = self.delay if digest_ in self.slow else 0.0
            watched = _Watched(stream, self.read, digest_, delay)
            if digest_ == self.broken:
                yield _Breaking(watched, self.break_after)
            else:
                yield watched


class _Breaking:
    def __init__(self, stream: _Watched, after: int) -> None:
        self._stream, self._left = stream, after

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise StoreError("registry example: GET blob: connection reset (gave up)")
        data = self._stream.read(min(n, self._left))
        self._left -= len(data)
        return data


def test_a_failed_apply_cancels_a_download_in_flight(
    stored: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layer 0 is corrupt: the applier fails on its first chunk, while the download
    of layer 1 (3 MiB; every store read is slowed to one a second) has only begun;
    it stops there rather than running to its end."""
    layers = stored["image"].manifest.layers
    store_dir = _copy_store(stored, tmp_path)
    victim = _layer_blob(stored, store_dir, 0)
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[20] ^= 0xFF  # the deflate stream breaks at once
    victim.write_bytes(bytes(data))
    holder: dict[str, _Wrapped] = {}

    def wrap(inner: LayoutStore) -> _Wrapped:
        holder["w"] = _Wrapped(inner, {d.digest for d in layers}, 1.0)
        return holder["w"]

    dest = tmp_path / "dest"
    started = time.monotonic()
    with pytest.raises(ImageError):
        _run(store_dir, stored["version"], {"rootfs": True}, dest, monkeypatch, wrap)
    elapsed = time.monotonic() - started
    w = holder["w"]
    assert layers[1].digest in w.opened  # it had started, side by side
    assert w.read.get(layers[1].digest, 0) < layers[1].size  # and was stopped midway
    assert elapsed < 10  # no hang (the bytes read above are the proof)
    assert list(dest.iterdir()) == []


def test_a_download_breaking_midway_fails_the_get_with_its_own_error(
    stored: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = stored["image"].manifest.layers
    holder: dict[str, _Wrapped] = {}

    def wrap(inner: LayoutStore) -> _Wrapped:
        holder["w"] = _Wrapped(inner, set(), 0.0, broken=layers[1].digest, break_after=MiB)
        return holder["w"]

    dest = tmp_path / "dest"
    with pytest.raises(StoreError, match="connection reset"):
        _run(stored["store"], stored["version"], {"rootfs": True}, dest, monkeypatch, wrap)
    assert list(dest.iterdir()) == []


def test_each_blob_is_downloaded_once(
    stored: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder: dict[str, _Wrapped] = {}

    def wrap(inner: LayoutStore) -> _Wrapped:
        holder["w"] = _Wrapped(inner, set(), 0.0)
        return holder["w"]

    _run(stored["store"], stored["version"], {"rootfs": True}, tmp_path / "d", monkeypatch, wrap)
    manifest = stored["image"].manifest
    image_blobs = [d.digest for d in (manifest.config, *manifest.layers)]
    opened = holder["w"].opened
    assert sorted(d for d in opened if d in image_blobs) == sorted(image_blobs)


# --- the parts --------------------------------------------------------------------------


def test_a_filling_reader_follows_the_download_and_ends_only_when_verified(
    tmp_path: Path,
) -> None:
    from builder_resource.store.transfer import Filling

    data = os.urandom(3 * MiB + 5)
    path = tmp_path / "blob"
    path.write_bytes(bytes(len(data) + 100))
    filling = Filling(digest(data), len(data), path, 100)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(filling.open().read()))
    reader.start()
    with open(path, "r+b") as f:
        for start in range(0, len(data), MiB):
            f.seek(100 + start)
            f.write(data[start : start + MiB])
            f.flush()
            filling.advance(len(data[start : start + MiB]))
            time.sleep(0.02)
    time.sleep(0.1)
    assert reader.is_alive()  # every byte is there, but not yet verified: no EOF
    filling.finish()
    reader.join(5)
    assert got == [data]


def test_a_filling_reader_raises_the_downloads_error(tmp_path: Path) -> None:
    from builder_resource.store.transfer import Filling

    path = tmp_path / "blob"
    path.write_bytes(bytes(10))
    filling = Filling(digest(b"x" * 10), 10, path)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            filling.open().read()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    thread = threading.Thread(target=read)
    thread.start()
    filling.advance(4)
    filling.fail(DigestMismatchError("blob: expected this, got that"))
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], DigestMismatchError)


def test_read_ahead_keeps_order_and_hands_over_errors_after_the_data() -> None:
    from builder_resource.oci.read_ahead import ReadAhead

    chunks = [bytes([n]) * 1000 for n in range(10)]
    source = iter(chunks)

    def read(_: int) -> bytes:
        return next(source, b"")

    def finish() -> None:
        raise ImageError("trailer")

    with io.BufferedReader(ReadAhead(read, finish, depth=2), 4096) as stream:
        assert stream.read(10_000) == b"".join(chunks)
        with pytest.raises(ImageError, match="trailer"):
            stream.read(1)


def test_read_ahead_stops_its_thread_on_close() -> None:
    from builder_resource.oci.read_ahead import ReadAhead

    calls = 0

    def read(_: int) -> bytes:
        nonlocal calls
        calls += 1
        return b"x" * 100  # never ends

    ahead = ReadAhead(read, depth=2, name="test-read-ahead")
    assert ahead.read(10) == b"x" * 10
    ahead.close()
    time.sleep(0.2)
    assert not any(t.name == "test-read-ahead" for t in threading.enumerate())
    assert calls < 100


def test_planned_blob_slots_are_unique_and_in_order(stored: dict[str, Any], tmp_path: Path) -> None:
    manifest = stored["image"].manifest
    doubled = ImageManifest.parse(
        manifest.raw.replace(
            manifest.layers[1].digest.encode(), manifest.layers[0].digest.encode()
        ).replace(str(manifest.layers[1].size).encode(), str(manifest.layers[0].size).encode()),
        manifest.media_type,
    )
    planned = plan_image(tmp_path / "x.tar", "docker", doubled)
    digests = [s.descriptor.digest for s in planned.slots]
    assert len(digests) == len(set(digests)) == 3
    offsets = [s.offset for s in planned.slots]
    assert offsets == sorted(offsets) and all(o % 512 == 0 for o in offsets)


def test_a_refused_entry_while_the_layer_still_downloads_ends_the_get_promptly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The applier refuses layer 0's first entry while the rest of layer 0 (3 MiB,
    one 1 MiB read a second) is still on its way and the decompressing thread
    waits for it: the get fails at once with the refusal, it does not wait for
    the download to end, and leaves nothing."""
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w", format=tarfile.PAX_FORMAT) as tar:
        link = tarfile.TarInfo("etc/shadow")
        link.type, link.linkname = tarfile.LNKTYPE, "../../../etc/shadow"
        tar.addfile(link)
        big = tarfile.TarInfo("data/big.bin")
        payload = random.Random(7).randbytes(3 * MiB)
        big.size = len(payload)
        tar.addfile(big, io.BytesIO(payload))
    write_oci_archive(tmp_path / "h.tar", [hostile.getvalue()])
    image = prepare_image(read_image_archive(tmp_path / "h.tar"), tmp_path)  # type: ignore[arg-type]
    files_tar = _layer({"release/notes.txt": b"notes\n"})
    files = FilesLayer(BytesBlob(gzip.compress(files_tar, mtime=0)), digest(files_tar), 1, 6)
    release = Release((ReleaseImage("app", "app.tar", image),), files)
    index = publish(LayoutStore(tmp_path / "store"), encode(release), "1")
    layer = image.manifest.layers[0]

    holder: dict[str, _Wrapped] = {}

    def wrap(inner: LayoutStore) -> _Wrapped:
        holder["w"] = _Wrapped(inner, {layer.digest}, 1.0)
        return holder["w"]

    dest = tmp_path / "dest"
    started = time.monotonic()
    with pytest.raises(ImageError, match="refusing entry 'etc/shadow'"):
        _run(
            tmp_path / "store",
            {"tag": "1", "digest": index},
            {"rootfs": True},
            dest,
            monkeypatch,
            wrap,
        )
    assert holder["w"].read.get(layer.digest, 0) < layer.size  # stopped midway
    assert time.monotonic() - started < 10  # no hang
    assert list(dest.iterdir()) == []


def test_read_ahead_stays_within_its_depth_when_the_reader_is_slow() -> None:
    """Memory stays flat: a fast producer stops when the queue is full."""
    from builder_resource.oci.read_ahead import ReadAhead

    calls = 0

    def read(n: int) -> bytes:
        nonlocal calls
        calls += 1
        return b"x" * n

    ahead = ReadAhead(read, chunk=1000, depth=3)
    time.sleep(0.3)
    assert calls <= 3 + 1  # three queued, one waiting to be
    assert ahead.read(2500) == b"x" * 1000  # one chunk at a time
    ahead.close()


def test_a_layer_two_images_share_is_downloaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second image copies the shared layer from the first one's archive
    (verified again on the way): each blob crosses the network once per get."""
    shared = LAYERS[1]
    write_oci_archive(tmp_path / "a.tar", [shared, LAYERS[0]])
    write_oci_archive(tmp_path / "b.tar", [shared, LAYERS[2]])
    prepared = [
        prepare_image(read_image_archive(tmp_path / f"{n}.tar"), tmp_path)  # type: ignore[arg-type]
        for n in ("a", "b")
    ]
    files_tar = _layer({"release/notes.txt": b"notes\n"})
    files = FilesLayer(BytesBlob(gzip.compress(files_tar, mtime=0)), digest(files_tar), 1, 6)
    images = tuple(
        ReleaseImage(n, f"{n}.tar", image) for n, image in zip("ab", prepared, strict=True)
    )
    index = publish(LayoutStore(tmp_path / "store"), encode(Release(images, files)), "1")
    shared_digest = prepared[0].manifest.layers[0].digest
    assert shared_digest == prepared[1].manifest.layers[0].digest
    holder: dict[str, _Wrapped] = {}

    def wrap(inner: LayoutStore) -> _Wrapped:
        holder["w"] = _Wrapped(inner, set(), 0.0)
        return holder["w"]

    dest = tmp_path / "dest"
    version = {"tag": "1", "digest": index}
    _run(tmp_path / "store", version, {"rootfs": True}, dest, monkeypatch, wrap)
    assert holder["w"].opened.count(shared_digest) == 1
    assert (dest / "images/a/rootfs/data/random.bin").stat().st_size == 3 * MiB
    assert (dest / "images/b/rootfs/etc/late").is_file()  # its layer 2 removed random.bin
    assert not (dest / "images/b/rootfs/data/random.bin").exists()
    for n in ("a", "b"):
        archive = read_image_archive(dest / f"release/{n}.tar")
        assert archive is not None and archive.manifest is not None
    # the same tarballs as when each image is fetched on its own
    for n in ("a", "b"):
        alone = tmp_path / f"alone-{n}"
        _run(tmp_path / "store", version, {"images": [n]}, alone)
        assert (alone / f"release/{n}.tar").read_bytes() == (dest / f"release/{n}.tar").read_bytes()


def test_a_corrupted_copy_of_a_shared_layer_fails_the_get(tmp_path: Path) -> None:
    """What is copied from an earlier image's archive is hashed again."""
    from builder_resource.store.transfer import Filling, ReusingStore, fetch_into

    data = os.urandom(MiB + 7)
    first = tmp_path / "first"
    first.write_bytes(data)
    done = Filling(digest(data), len(data), first)
    done.finish()
    reusing = ReusingStore(LayoutStore(tmp_path / "empty-store"))
    reusing.remember(done)
    second = tmp_path / "second"
    second.write_bytes(bytes(len(data)))
    fetch_into(reusing, Filling(digest(data), len(data), second))  # type: ignore[arg-type]
    assert second.read_bytes() == data
    with open(first, "r+b") as f:  # the earlier copy changed under us
        f.write(b"\0")
    third = tmp_path / "third"
    third.write_bytes(bytes(len(data)))
    with pytest.raises(DigestMismatchError):
        fetch_into(reusing, Filling(digest(data), len(data), third))  # type: ignore[arg-type]
