"""The benchmark's test images, generated deterministically and cached.

An image is a list of layers, each a tar (mtime 0, owner 0:0) of generated
content: incompressible bytes, compressible log-like text, or many small files.
Layers are gzipped (isal level 1 where installed, else zlib level 1) and written
as an ``oci-archive`` the way ``buildah push oci-archive:`` lays it out, and on
request as a ``docker-archive`` with uncompressed layers (as ``buildah push
docker-archive:`` writes it). The same parameters give the same bytes; the result
is cached under a directory named by a hash of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import string
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    from isal import isal_zlib as _gzip_impl

    GZIP_BACKEND = "isal"
except ImportError:  # pragma: no cover - depends on the machine
    _gzip_impl = zlib  # type: ignore[assignment]
    GZIP_BACKEND = "zlib"

GENERATOR_VERSION = 2
MiB = 1 << 20
BLOCK = MiB
TEXT_FILE_SIZE = 8 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REPO_TAG = "localhost/bench/app:latest"


@dataclass(frozen=True)
class LayerSpec:
    """``kind`` is ``random`` or ``text`` (``amount`` bytes) or ``files`` (``amount`` files)."""

    kind: str
    amount: int
    seed: int


@dataclass(frozen=True)
class ImageSpec:
    name: str
    layers: tuple[LayerSpec, ...]
    docker_archive: bool = False
    keep_blobs: bool = False

    def key(self) -> str:
        text = json.dumps([GENERATOR_VERSION, GZIP_BACKEND, asdict(self)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class GeneratedImage:
    directory: Path
    oci_archive: Path
    docker_archive: Path | None
    blobs: tuple[Path, ...]  # the gzip layers in order, when kept
    uncompressed: int  # bytes of all layer tars
    compressed: int  # bytes of all gzip layers
    manifest_digest: str  # of the oci-archive's manifest

    @property
    def uncompressed_mib(self) -> float:
        return self.uncompressed / MiB

    @property
    def compressed_mib(self) -> float:
        return self.compressed / MiB


def main_image(size_mib: float, small_files: int) -> ImageSpec:
    """The four-layer image of issue 6, scaled to about ``size_mib`` MiB:
    160 + 96 MiB random, 130 MiB text and ``small_files`` small files at 400."""
    scale = size_mib / 400
    return ImageSpec(
        "main",
        (
            LayerSpec("random", max(4096, int(160 * MiB * scale)), 1),
            LayerSpec("random", max(4096, int(96 * MiB * scale)), 2),
            LayerSpec("text", max(4096, int(130 * MiB * scale)), 3),
            LayerSpec("files", small_files, 4),
        ),
        docker_archive=True,
        keep_blobs=True,
    )


def single_layer_image(name: str, size_mib: float) -> ImageSpec:
    """One random layer of ``size_mib`` MiB (the memory measures)."""
    return ImageSpec(name, (LayerSpec("random", int(size_mib * MiB), 11),))


def ensure(spec: ImageSpec, cache: Path, log: Callable[[str], None] = print) -> GeneratedImage:
    """The generated image for ``spec`` from ``cache``, generating it when missing."""
    directory = cache / f"{spec.name}-{spec.key()}"
    meta = directory / "meta.json"
    if not meta.is_file():
        _prune(cache)
        log(f"generating image {spec.name} into {directory} ...")
        tmp = cache / f".{directory.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _generate(spec, tmp)
            shutil.rmtree(directory, ignore_errors=True)
            os.rename(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    data = json.loads(meta.read_text())
    return GeneratedImage(
        directory=directory,
        oci_archive=directory / "image.oci.tar",
        docker_archive=directory / "image.docker.tar" if spec.docker_archive else None,
        blobs=tuple(directory / name for name in data["blobs"]),
        uncompressed=data["uncompressed"],
        compressed=data["compressed"],
        manifest_digest=data["manifest_digest"],
    )


def _prune(cache: Path) -> None:
    """Remove images an older generator made: they would never be used again."""
    if not cache.is_dir():
        return
    for old in cache.glob("*/meta.json"):
        try:
            version = json.loads(old.read_text()).get("generator")
        except (OSError, ValueError):
            version = None
        if version != GENERATOR_VERSION:
            shutil.rmtree(old.parent, ignore_errors=True)


# --- content --------------------------------------------------------------------------


def _random_chunks(size: int, seed: int) -> Iterator[bytes]:
    """Incompressible bytes: SHAKE-128 of (seed, block number)."""
    for number, offset in enumerate(range(0, size, BLOCK)):
        todo = min(BLOCK, size - offset)
        yield hashlib.shake_128(b"%d/%d" % (seed, number)).digest(todo)


def _vocabulary(rng: random.Random, size: int = 30000) -> list[str]:
    letters = string.ascii_lowercase
    return ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(size)]


def _text_chunks(size: int, seed: int) -> Iterator[bytes]:
    """Log-like lines: a fixed vocabulary, trace ids, latencies and addresses
    (gzip ratio about 0.45 at isal level 1, 0.44 at zlib level 6)."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    levels = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
    produced = 0
    line = 0
    while produced < size:
        lines = []
        for _ in range(2000):
            line += 1
            seconds = line // 50
            lines.append(
                f"2024-05-01T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:"
                f"{seconds % 60:02d}Z {rng.choice(levels)} worker-{rng.randrange(64)} "
                f"req={line:08x} id={rng.getrandbits(32):08x} took={rng.randrange(1, 5000)}ms "
                f"ip=10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)} "
                + " ".join(rng.choices(words, k=rng.randint(5, 14)))
            )
        chunk = ("\n".join(lines) + "\n").encode()[: size - produced]
        produced += len(chunk)
        yield chunk


Entry = tuple[str, int, int, Callable[[], Iterator[bytes]] | None]  # name, mode, size, content


def _layer_entries(layer: LayerSpec) -> list[Entry]:
    if layer.kind == "random":
        return [
            ("data/", 0o755, 0, None),
            (
                f"data/random-{layer.seed}.bin",
                0o644,
                layer.amount,
                lambda: _random_chunks(layer.amount, layer.seed),
            ),
        ]
    if layer.kind == "text":
        entries: list[Entry] = [("var/", 0o755, 0, None), ("var/log/", 0o755, 0, None)]
        for number, offset in enumerate(range(0, layer.amount, TEXT_FILE_SIZE)):
            size = min(TEXT_FILE_SIZE, layer.amount - offset)
            seed = layer.seed * 1000 + number
            entries.append(
                (
                    f"var/log/app-{number:03d}.log",
                    0o644,
                    size,
                    lambda size=size, seed=seed: _text_chunks(size, seed),
                )
            )
        return entries
    if layer.kind == "files":
        rng = random.Random(layer.seed)
        words = _vocabulary(rng, 4000)
        entries = [
            ("usr/", 0o755, 0, None),
            ("usr/share/", 0o755, 0, None),
            ("usr/share/bench/", 0o755, 0, None),
        ]
        per_dir = 50
        for number in range(layer.amount):
            if number % per_dir == 0:
                entries.append((f"usr/share/bench/d{number // per_dir:03d}/", 0o755, 0, None))
            body = " ".join(rng.choices(words, k=rng.randint(30, 400))).encode() + b"\n"
            mode = 0o755 if number % 17 == 0 else 0o644
            entries.append(
                (
                    f"usr/share/bench/d{number // per_dir:03d}/f{number:05d}.txt",
                    mode,
                    len(body),
                    lambda body=body: iter((body,)),
                )
            )
        return entries
    raise ValueError(f"unknown layer kind {layer.kind!r}")


# --- writing --------------------------------------------------------------------------


class _LayerSink:
    """Takes a layer's tar stream: hashes it, optionally keeps it, and gzips it
    (fixed header: no name, mtime 0) into a file while hashing that too."""

    def __init__(self, gz_path: Path, raw_path: Path | None) -> None:
        self.raw_hash = hashlib.sha256()
        self.gz_hash = hashlib.sha256()
        self.raw_size = 0
        self.gz_size = 0
        self._compressor = _gzip_impl.compressobj(1, zlib.DEFLATED, 31)
        self._gz = open(gz_path, "wb")  # noqa: SIM115 - closed in close()
        self._raw = open(raw_path, "wb") if raw_path else None  # noqa: SIM115

    def write(self, data: bytes) -> None:
        self.raw_hash.update(data)
        self.raw_size += len(data)
        if self._raw:
            self._raw.write(data)
        self._emit(self._compressor.compress(data))

    def _emit(self, data: bytes) -> None:
        if data:
            self.gz_hash.update(data)
            self.gz_size += len(data)
            self._gz.write(data)

    def close(self) -> None:
        self._emit(self._compressor.flush())
        self._gz.close()
        if self._raw:
            self._raw.close()


def _write_layer_tar(entries: list[Entry], sink: _LayerSink) -> None:
    """A POSIX tar of ``entries``, padded to 10240-byte records as GNU tar does."""
    written = 0
    for name, mode, size, content in entries:
        info = tarfile.TarInfo(name.rstrip("/"))
        info.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
        info.mode, info.size, info.mtime = mode, size, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        sink.write(header)
        written += len(header)
        if content is not None:
            for chunk in content():
                sink.write(chunk)
            written += size
            if size % 512:
                sink.write(b"\0" * (512 - size % 512))
                written += 512 - size % 512
    end = 1024 + (-(written + 1024) % tarfile.RECORDSIZE)
    sink.write(b"\0" * end)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _archive_info(name, len(data))
    archive.addfile(info, io.BytesIO(data))


def _add_file(archive: tarfile.TarFile, name: str, path: Path) -> None:
    info = _archive_info(name, path.stat().st_size)
    with open(path, "rb") as f:
        archive.addfile(info, f)


def _archive_info(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid = size, 0, 0, 0
    info.mode = 0o755 if directory else 0o644
    if directory:
        info.type = tarfile.DIRTYPE
    return info


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _generate(spec: ImageSpec, out: Path) -> None:
    layers_dir = out / "layers"
    layers_dir.mkdir()
    layers: list[dict] = []
    raw_paths: list[Path] = []
    for number, layer in enumerate(spec.layers):
        gz_path = layers_dir / f"layer-{number}.tar.gz"
        raw_path = out / f"layer-{number}.tar" if spec.docker_archive else None
        sink = _LayerSink(gz_path, raw_path)
        try:
            _write_layer_tar(_layer_entries(layer), sink)
        finally:
            sink.close()
        layers.append(
            {
                "path": gz_path,
                "digest": "sha256:" + sink.gz_hash.hexdigest(),
                "size": sink.gz_size,
                "diff_id": "sha256:" + sink.raw_hash.hexdigest(),
                "raw_size": sink.raw_size,
                "kind": layer.kind,
            }
        )
        if raw_path:
            raw_paths.append(raw_path)

    config = _json_bytes(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"] for layer in layers]},
            "history": [
                {"created": "1970-01-01T00:00:00Z", "created_by": f"bench: {layer['kind']}"}
                for layer in layers
            ],
        }
    )
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = _json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": layer["digest"], "size": layer["size"]}
                for layer in layers
            ],
        }
    )
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = _json_bytes(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": "latest"},
                }
            ],
        }
    )

    # oci-archive: the layout directory walked in name order, as containers/image tars it.
    blobs: dict[str, Path | bytes] = {layer["digest"]: layer["path"] for layer in layers}
    blobs[config_digest] = config
    blobs[manifest_digest] = manifest
    with tarfile.open(out / "image.oci.tar", "w", copybufsize=MiB) as archive:
        archive.addfile(_archive_info("blobs", 0, directory=True))
        archive.addfile(_archive_info("blobs/sha256", 0, directory=True))
        for digest in sorted(blobs):
            name = "blobs/sha256/" + digest.removeprefix("sha256:")
            content = blobs[digest]
            if isinstance(content, bytes):
                _add_bytes(archive, name, content)
            else:
                _add_file(archive, name, content)
        _add_bytes(archive, "index.json", index)
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')

    # docker-archive: uncompressed layers named by diff_id, then config and manifest.json.
    if spec.docker_archive:
        config_name = config_digest.removeprefix("sha256:") + ".json"
        layer_names = [layer["diff_id"].removeprefix("sha256:") + ".tar" for layer in layers]
        docker_manifest = [{"Config": config_name, "RepoTags": [REPO_TAG], "Layers": layer_names}]
        repository, tag = REPO_TAG.rsplit(":", 1)
        with tarfile.open(out / "image.docker.tar", "w", copybufsize=MiB) as archive:
            for name, raw in zip(layer_names, raw_paths, strict=True):
                _add_file(archive, name, raw)
            _add_bytes(archive, config_name, config)
            _add_bytes(archive, "manifest.json", _json_bytes(docker_manifest))
            _add_bytes(
                archive,
                "repositories",
                _json_bytes({repository: {tag: layer_names[-1].removesuffix(".tar")}}),
            )
        for raw in raw_paths:
            raw.unlink()

    kept: list[str] = []
    if spec.keep_blobs:
        kept = [str(Path(layer["path"]).relative_to(out)) for layer in layers]
    else:
        shutil.rmtree(layers_dir)
    (out / "meta.json").write_text(
        json.dumps(
            {
                "generator": GENERATOR_VERSION,
                "spec": asdict(spec),
                "gzip": GZIP_BACKEND,
                "blobs": kept,
                "uncompressed": sum(layer["raw_size"] for layer in layers),
                "compressed": sum(layer["size"] for layer in layers),
                "manifest_digest": manifest_digest,
                "layers": [{k: v for k, v in layer.items() if k != "path"} for layer in layers],
            },
            indent=2,
        )
    )
