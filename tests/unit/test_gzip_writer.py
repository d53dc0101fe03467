"""The block gzip writer: one valid gzip member, the same bytes whatever the
workers, write sizes or backend state, and errors that surface instead of hanging."""

from __future__ import annotations

import gzip
import io
import random
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from builder_resource.oci import gzip_writer as writer_module
from builder_resource.oci.gzip_writer import (
    GZIP_HEADER,
    BlockGzipWriter,
    crc32_combine,
    gzip_writer,
    incompressible,
)

BLOCK = 128 << 10  # small blocks: many of them in little data


def sample(seed: int = 1) -> bytes:
    """Incompressible and compressible stretches, not aligned to blocks."""
    rng = random.Random(seed)
    text = b"".join(
        b"%06d level=info msg=request served path=/api/v%d/items/%d\n"
        % (i, rng.randrange(3), rng.randrange(10**6))
        for i in range(9000)
    )
    return rng.randbytes(300_001) + text + rng.randbytes(200_000) + text[:77_777]


def compress(data: bytes, how: str, workers: int | None, block: int = BLOCK) -> bytes:
    out = io.BytesIO()
    with BlockGzipWriter(out, workers=workers, block=block) as gz:  # type: ignore[arg-type]
        if how == "once":
            gz.write(data)
        elif how == "odd":
            for start in range(0, len(data), 7919):
                gz.write(data[start : start + 7919])
        elif how == "blocks":
            for start in range(0, len(data), block):
                gz.write(data[start : start + block])
        else:
            gz.write(data[:1000])
            gz.write_from(io.BytesIO(data[1000:]))
    return out.getvalue()


def test_same_bytes_whatever_the_workers_and_the_writes() -> None:
    data = sample()
    outputs = {
        (how, workers): compress(data, how, workers)
        for how in ("once", "odd", "blocks", "from")
        for workers in (1, 2, 3)
    }
    first = outputs[("once", 1)]
    assert all(out == first for out in outputs.values()), {k: len(v) for k, v in outputs.items()}
    assert gzip.decompress(first) == data
    assert zlib.decompress(first, wbits=31) == data
    assert first[:10] == GZIP_HEADER  # no name, mtime 0
    # the text shrinks; the random stretches, stored, grow by 5 bytes in 64 KiB
    assert len(first) < 500_001 + 9000 * 40


def test_incompressible_blocks_are_stored_and_text_is_deflated() -> None:
    rng = random.Random(2)
    noise = rng.randbytes(BLOCK)
    text = sample()[300_001 : 300_001 + BLOCK]
    assert incompressible(noise) and not incompressible(text)
    assert not incompressible(noise[:1000])  # too short to judge: deflated
    out = compress(noise + text, "once", 2)
    # the noise block: stored pieces of at most 64 KiB, each after a 5-byte header
    assert out[10] == 0 and int.from_bytes(out[11:13], "little") == 0xFFFF
    assert out[15 : 15 + 0xFFFF] == noise[:0xFFFF]
    assert len(out) < BLOCK + 5 * 3 + len(text) // 2
    assert gzip.decompress(out) == noise + text


def test_the_shared_pool_gives_the_same_bytes_as_a_private_one() -> None:
    data = sample(3) * 3  # more than two default blocks
    first = io.BytesIO()
    with gzip_writer(first) as gz:  # type: ignore[arg-type]
        gz.write(data)
    again = io.BytesIO()
    with BlockGzipWriter(again) as gz:  # type: ignore[arg-type]
        gz.write_from(io.BytesIO(data))
    private = compress(data, "odd", 1, block=writer_module.GZIP_BLOCK)
    assert first.getvalue() == again.getvalue() == private
    assert gzip.decompress(private) == data


@pytest.mark.skipif(shutil.which("gzip") is None, reason="no gzip")
def test_gzip_t_accepts_it(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(compress(sample(), "once", 2))
    subprocess.run(["gzip", "-t", str(path)], check=True)
    empty = tmp_path / "empty.gz"
    empty.write_bytes(compress(b"", "once", 2))
    subprocess.run(["gzip", "-t", str(empty)], check=True)
    assert gzip.decompress(empty.read_bytes()) == b""


def test_the_zlib_fallback_is_deterministic_too(monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample(4)[:600_000]
    monkeypatch.setattr(writer_module, "_fast_zlib", None)
    outputs = {compress(data, how, w) for how in ("once", "odd") for w in (1, 3)}
    assert len(outputs) == 1
    out = outputs.pop()
    assert gzip.decompress(out) == data


@pytest.mark.parametrize("fast", [True, False])
def test_crc32_combine(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    if not fast:
        monkeypatch.setattr(writer_module, "_fast_zlib", None)
    rng = random.Random(5)
    for a_len, b_len in [(0, 0), (1, 0), (0, 7), (3, 5000), (100, 1 << 20), (70_000, 3)]:
        a, b = rng.randbytes(a_len), rng.randbytes(b_len)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


class Failing(io.RawIOBase):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.left = after

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:  # type: ignore[override]
        self.left -= 1
        if self.left < 0:
            raise OSError(28, "No space left on device")
        return len(data)  # type: ignore[arg-type]


def test_a_failing_target_raises_and_does_not_hang() -> None:
    data = sample()
    target = Failing(2)
    with (
        pytest.raises(OSError, match="No space"),
        BlockGzipWriter(target, workers=2, block=BLOCK) as gz,
    ):  # type: ignore[arg-type]
        for _ in range(20):
            gz.write(data)
    target = Failing(2)
    with (
        pytest.raises(OSError, match="No space"),
        BlockGzipWriter(target, workers=2, block=BLOCK) as gz,
    ):  # type: ignore[arg-type]
        gz.write_from(io.BytesIO(data * 5))


def test_an_error_of_the_caller_stops_the_threads() -> None:
    out = io.BytesIO()
    with (
        pytest.raises(RuntimeError, match="boom"),
        BlockGzipWriter(out, workers=2, block=BLOCK) as gz,
    ):  # type: ignore[arg-type]
        gz.write(sample())
        raise RuntimeError("boom")
    assert gz.closed
    with pytest.raises(ValueError, match="closed"):
        gz.write(b"x")
