"""gzip_to_file: a layer of several blocks gzipped the same way every time, from a
file section or any blob source, and refused when it does not match its diff_id."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
from pathlib import Path

import pytest

from builder_resource.errors import DigestMismatchError
from builder_resource.oci.blobs import BytesBlob, FileSection
from builder_resource.oci.digest import VerifyingReader
from builder_resource.oci.gzip_writer import GZIP_BLOCK
from builder_resource.oci.prepare import _gzip_layers, gzip_to_file
from fixtures.archives import digest, layer_tar


def big_layer() -> bytes:
    rng = random.Random(7)
    text = b"".join(
        b"line %d of a log, value %d\n" % (i, rng.randrange(999)) for i in range(60_000)
    )
    # several blocks: random (stored) and text (deflated), not a whole number of them
    return layer_tar({"noise.bin": rng.randbytes(GZIP_BLOCK + 12345), "log.txt": text})


def section(tmp_path: Path, data: bytes, pad: int = 1000) -> FileSection:
    path = tmp_path / f"archive-{pad}.bin"
    path.write_bytes(b"\0" * pad + data + b"trailing bytes of the archive")
    return FileSection(path, pad, len(data), digest(data))


def test_the_same_file_every_time_from_any_source(tmp_path: Path) -> None:
    data = big_layer()
    assert len(data) > 2 * GZIP_BLOCK
    outputs = []
    for source in (section(tmp_path, data), BytesBlob(data), section(tmp_path, data, 0)):
        scratch = tmp_path / f"s{len(outputs)}"
        scratch.mkdir()
        out = gzip_to_file(source, scratch)
        raw = out.path.read_bytes()
        assert out.size == len(raw) and out.digest == digest(raw)
        assert gzip.decompress(raw) == data
        outputs.append(raw)
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_corrupt_or_short_layer_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    data = big_layer()
    good = section(tmp_path, data)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    bad = bytearray(data)
    bad[GZIP_BLOCK + 5] ^= 1
    (tmp_path / "bad.bin").write_bytes(bytes(bad))
    with pytest.raises(DigestMismatchError, match="layer"):
        gzip_to_file(FileSection(tmp_path / "bad.bin", 0, len(bad), good.digest), scratch)
    (tmp_path / "short.bin").write_bytes(data[:-1])
    with pytest.raises(DigestMismatchError, match="bytes"):
        gzip_to_file(FileSection(tmp_path / "short.bin", 0, len(data), good.digest), scratch)
    assert list(scratch.iterdir()) == []


def test_gzip_layers_dedups_and_keeps_the_order(tmp_path: Path) -> None:
    small = layer_tar({"a": b"a" * 5000})
    a = BytesBlob(small)
    b = section(tmp_path, big_layer())
    done = _gzip_layers([b, a, b], tmp_path)
    assert list(done) == [b.digest, a.digest]
    assert gzip.decompress(done[a.digest].path.read_bytes()) == small


def test_verifying_reader_readinto_checks_what_it_reads() -> None:
    data = bytes(range(256)) * 100
    buffer = bytearray(1000)
    seen = bytearray()
    reader = VerifyingReader(io.BytesIO(data), digest(data), len(data))
    while n := reader.readinto(buffer):
        seen += buffer[:n]
    assert bytes(seen) == data
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    reader = VerifyingReader(io.BytesIO(data), wrong, len(data))
    with pytest.raises(DigestMismatchError):
        while reader.readinto(buffer):
            pass
    reader = VerifyingReader(io.BytesIO(data + b"x"), digest(data), len(data))
    with pytest.raises(DigestMismatchError, match="more than"):
        while reader.readinto(buffer):
            pass


def test_a_file_section_reads_its_bytes_alone_into_the_callers_buffer(tmp_path: Path) -> None:
    from builder_resource.oci.blobs import SectionReader

    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 4)
    reader = SectionReader(path, 100, 300)
    buffer = bytearray(128)
    got = b""
    while n := reader.readinto(memoryview(buffer)[: 7 if not got else 128]):
        got += bytes(buffer[:n])
    assert got == (bytes(range(256)) * 4)[100:400]
    assert reader.readinto(buffer) == 0 and reader.tell() == 300
    reader.seek(-10, 2)
    assert reader.read() == (bytes(range(256)) * 4)[390:400]
    reader.close()
