"""Recognising and reading image archives without unpacking them.

Three shapes are read (see the reference on archive formats):

- **oci-archive**: a tar of an OCI image layout (``buildah push oci-archive:``);
- **dual**: an OCI layout plus Docker's ``manifest.json`` (``img save``, Docker 25+);
- **docker-archive**: ``manifest.json`` and loose files, layers usually
  uncompressed (``buildah push docker-archive:``, older ``docker save``).

Blobs are byte ranges of the archive file (:class:`FileSection`); nothing is copied.
Where the archive holds a manifest (OCI layout and dual), its exact bytes are kept
so the image keeps its digest.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError
from . import media_types as mt
from .blobs import BlobSource, FileSection
from .compression import sniff
from .descriptor import Descriptor, parse_json
from .digest import CHUNK, check_digest, sha256_digest
from .manifest import ImageManifest, Index, config_platform
from .platforms import is_runnable, platform_name, platforms_of

log = logging.getLogger(__name__)

REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ArchiveLayer:
    source: BlobSource
    compression: str  # "gzip", "zstd" or "none", sniffed from the bytes
    media_type: str | None  # from the archive's manifest, when it has one


@dataclass(frozen=True)
class ArchiveImage:
    """One image read from an archive, ready to be stored."""

    kind: str  # "oci-archive", "dual" or "docker-archive"
    manifest: ImageManifest | None  # exact manifest, when the archive has one
    config: BlobSource
    layers: tuple[ArchiveLayer, ...]
    repo_tags: tuple[str, ...]


@dataclass(frozen=True)
class ArchiveIndex:
    """A multi-platform image read from an archive: one image per platform."""

    kind: str  # "oci-archive", "dual" or "docker-archive"
    raw: bytes | None  # the index's exact bytes; None where the archive holds no index blob
    media_type: str
    #: each image with its entry in the index (None for a docker-archive set's images)
    images: tuple[tuple[Descriptor | None, ArchiveImage], ...]
    repo_tags: tuple[str, ...]


def looks_like_tar(path: Path) -> bool:
    """Cheap test before opening: a POSIX/GNU tar has 'ustar' at offset 257."""
    try:
        with open(path, "rb") as f:
            head = f.read(265)
    except OSError:
        return False
    return len(head) >= 262 and head[257:262] == b"ustar"


def read_image_archive(path: Path) -> ArchiveImage | ArchiveIndex | None:
    """The image in ``path`` (one platform, or an index of several), or None when
    it is not an image archive.

    A tar that is an image archive but holds several unrelated images is not taken
    as an image: it is logged and left to be stored as a plain file.
    """
    if not looks_like_tar(path):
        return None
    try:
        with tarfile.open(path, "r:") as tar:
            members = _index_members(tar)
    except (tarfile.TarError, OSError):
        return None
    reader = _ArchiveReader(path, members)
    if "oci-layout" in members and "index.json" in members:
        return reader.read_layout()
    if "manifest.json" in members:
        return reader.read_docker()
    return None


def _index_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for info in tar:
        name = posixpath.normpath(info.name.lstrip("/"))
        if name.startswith("./"):
            name = name[2:]
        members[name] = info
    return members


class _ArchiveReader:
    def __init__(self, path: Path, members: dict[str, tarfile.TarInfo]) -> None:
        self.path = path
        self.members = members

    # -- generic access -------------------------------------------------------
    def member(self, name: str, depth: int = 0) -> tarfile.TarInfo:
        name = posixpath.normpath(name.lstrip("/"))
        info = self.members.get(name)
        if info is None:
            raise ImageError(f"{self.path.name}: archive has no {name}")
        if info.issym() or info.islnk():
            if depth > 8:
                raise ImageError(f"{self.path.name}: too many links at {name}")
            target = info.linkname
            if info.issym():
                target = posixpath.join(posixpath.dirname(name), target)
            return self.member(target, depth + 1)
        if not info.isfile():
            raise ImageError(f"{self.path.name}: {name} is not a file")
        return info

    def read(self, name: str, limit: int = 16 << 20) -> bytes:
        info = self.member(name)
        if info.size > limit:
            raise ImageError(f"{self.path.name}: {name} is implausibly large ({info.size} bytes)")
        with open(self.path, "rb") as f:
            f.seek(info.offset_data)
            return f.read(info.size)

    def section(self, name: str, digest: str | None = None) -> FileSection:
        info = self.member(name)
        if digest is None:
            digest = self._hash(info)
        return FileSection(self.path, info.offset_data, info.size, digest)

    def head(self, info_or_section: FileSection) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(info_or_section.offset)
            return f.read(min(4, info_or_section.size))

    def _hash(self, info: tarfile.TarInfo) -> str:
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            f.seek(info.offset_data)
            left = info.size
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise ImageError(f"{self.path.name}: truncated member {info.name}")
                h.update(chunk)
                left -= len(chunk)
        return "sha256:" + h.hexdigest()

    def blob(self, digest: str) -> FileSection:
        algorithm, hexpart = check_digest(digest).split(":", 1)
        return self.section(f"blobs/{algorithm}/{hexpart}", digest)

    # -- OCI layout (oci-archive and dual) -------------------------------------
    def read_layout(self) -> ArchiveImage | ArchiveIndex | None:
        index = Index.parse(self.read("index.json"))
        kind = "dual" if "manifest.json" in self.members else "oci-archive"
        repo_tags = self._repo_tags() or tuple(
            name for d in index.manifests if (name := d.annotations.get(REF_NAME))
        )
        digests = {d.digest for d in index.manifests}
        if len(digests) != 1:
            if _one_per_platform(index.manifests):
                # index.json itself lists one image per platform: no index blob to keep
                images = tuple((d, self._read_image(d, kind, ())) for d in index.manifests)
                return ArchiveIndex(kind, None, mt.OCI_INDEX, images, repo_tags)
            log.warning(
                "%s holds %d images; stored as a plain file (save one image per archive)",
                self.path.name,
                len(digests),
            )
            return None
        descriptor = index.manifests[0]
        if descriptor.media_type in mt.INDEXES:
            return self._read_index(descriptor, kind, repo_tags)
        return self._read_image(descriptor, kind, repo_tags)

    def _read_index(
        self, descriptor: Descriptor, kind: str, repo_tags: tuple[str, ...]
    ) -> ArchiveIndex:
        """A multi-platform image: the index's exact bytes, and every manifest it lists."""
        raw = self._verified(descriptor)
        index = Index.parse(raw)
        images = []
        for child in index.manifests:
            if child.media_type in mt.INDEXES:
                raise ImageError(
                    f"{self.path.name}: an index inside a multi-platform index is not supported"
                )
            images.append((child, self._read_image(child, kind, ())))
        if not platforms_of(index.manifests):
            raise ImageError(f"{self.path.name}: its index names no platform for any image")
        return ArchiveIndex(kind, raw, descriptor.media_type, tuple(images), repo_tags)

    def _read_image(
        self, descriptor: Descriptor, kind: str, repo_tags: tuple[str, ...]
    ) -> ArchiveImage:
        manifest = ImageManifest.parse(self._verified(descriptor), descriptor.media_type)
        layers = []
        for layer in manifest.layers:
            section = self.blob(layer.digest)
            if section.size != layer.size:
                raise ImageError(f"{self.path.name}: layer {layer.digest} has the wrong size")
            layers.append(ArchiveLayer(section, sniff(self.head(section)), layer.media_type))
        return ArchiveImage(
            kind, manifest, self.blob(manifest.config.digest), tuple(layers), repo_tags
        )

    def _verified(self, descriptor: Descriptor) -> bytes:
        """A manifest's or an index's exact bytes, checked against their digest."""
        raw = self.read(_blob_name(descriptor.digest))
        if sha256_digest(raw) != descriptor.digest:
            raise ImageError(f"{self.path.name}: manifest does not match its digest")
        return raw

    def _repo_tags(self) -> tuple[str, ...]:
        if "manifest.json" not in self.members:
            return ()
        entries = parse_json(self.read("manifest.json"), f"{self.path.name}: manifest.json")
        if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict):
            return tuple(entries[0].get("RepoTags") or ())
        return ()

    # -- docker-archive -------------------------------------------------------
    def read_docker(self) -> ArchiveImage | ArchiveIndex | None:
        entries = parse_json(self.read("manifest.json"), f"{self.path.name}: manifest.json")
        if not isinstance(entries, list) or not entries:
            raise ImageError(f"{self.path.name}: manifest.json is not a list of images")
        if len(entries) == 1:
            return self._read_docker_entry(entries[0])
        images = [self._read_docker_entry(entry) for entry in entries]
        platforms = [platform_name(self._config_platform(image)) for image in images]
        if "unknown" in platforms or len(set(platforms)) != len(platforms):
            log.warning(
                "%s holds %d images; stored as a plain file (save one image per archive, "
                "or one per platform)",
                self.path.name,
                len(entries),
            )
            return None
        # a docker-archive set, one image per platform: put writes the index
        repo_tags = tuple(dict.fromkeys(t for image in images for t in image.repo_tags))
        pairs = tuple((None, image) for image in images)
        return ArchiveIndex("docker-archive", None, mt.OCI_INDEX, pairs, repo_tags)

    def _config_platform(self, image: ArchiveImage) -> dict[str, str]:
        with image.config.open() as f:
            return config_platform(f.read(16 << 20))

    def _read_docker_entry(self, entry: object) -> ArchiveImage:
        if not isinstance(entry, dict) or "Config" not in entry or "Layers" not in entry:
            raise ImageError(f"{self.path.name}: manifest.json entry lacks Config or Layers")
        if entry.get("LayerSources"):
            raise ImageError(f"{self.path.name}: foreign layers (LayerSources) are not supported")
        config = self.section(entry["Config"])
        diff_ids = _diff_ids(self.read(entry["Config"]), self.path.name)
        if len(diff_ids) != len(entry["Layers"]):
            raise ImageError(f"{self.path.name}: config and manifest.json disagree on layers")
        layers = []
        for name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
            info = self.member(name)
            probe = FileSection(self.path, info.offset_data, info.size, diff_id)
            compression = sniff(self.head(probe))
            # An uncompressed layer's digest is its diff_id: no need to hash it here.
            source = probe if compression == "none" else self.section(name)
            layers.append(ArchiveLayer(source, compression, None))
        return ArchiveImage(
            "docker-archive", None, config, tuple(layers), tuple(entry.get("RepoTags") or ())
        )


def _one_per_platform(manifests: tuple[Descriptor, ...]) -> bool:
    """Whether an index.json lists several images, each for a platform of its own."""
    if len(manifests) < 2 or any(d.media_type not in mt.IMAGE_MANIFESTS for d in manifests):
        return False
    if not all(is_runnable(d) for d in manifests):
        return False
    return len(platforms_of(manifests)) == len(manifests)


def _diff_ids(raw: bytes, where: str) -> list[str]:
    config = parse_json(raw, f"{where}: image config")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list):
        raise ImageError(f"{where}: image config has no rootfs.diff_ids")
    return [check_digest(d) for d in diff_ids]


def _blob_name(digest: str) -> str:
    algorithm, hexpart = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexpart}"
