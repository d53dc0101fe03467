"""Collecting the output directory: its image archives, and every other entry as
one deterministic tar.

The tar keeps paths, modes, symlinks (as symlinks), hardlinks and empty
directories; owners and times are normalised (0:0, mtime 0) so that the same
output gives the same digest whatever machine or hour built it.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError
from ..oci.archive_read import ArchiveImage, ArchiveIndex, read_image_archive
from ..oci.blobs import FileSection
from ..oci.digest import HashingWriter
from ..oci.files_layer import FILES_ROOT, FilesLayer
from ..oci.gzip_writer import gzip_writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundImage:
    name: str
    path: str  # relative to the output directory
    image: ArchiveImage | ArchiveIndex  # an index: a multi-platform image


@dataclass(frozen=True)
class Collected:
    images: tuple[FoundImage, ...]
    files: FilesLayer


def image_name(relative: str) -> str:
    """``app.tar`` -> ``app``; ``sub/app.tar`` -> ``sub/app``."""
    return relative[: -len(".tar")] if relative.endswith(".tar") else relative


def collect(output: Path, scratch: Path) -> Collected:
    if not output.is_dir():
        raise BuildError(f"the build left no output directory {output}")
    entries = sorted(_walk(output))
    images: list[FoundImage] = []
    for relative in entries:
        path = output / relative
        if path.is_file() and not path.is_symlink():
            found = read_image_archive(path)
            if found is not None:
                images.append(FoundImage(image_name(relative), relative, found))
    image_paths = {i.path for i in images}
    files = _tar_files(output, [e for e in entries if e not in image_paths], scratch)
    return Collected(tuple(images), files)


def _walk(root: Path) -> list[str]:
    out: list[str] = []
    for directory, dirs, files in os.walk(root):
        base = Path(directory).relative_to(root)
        for name in dirs + files:
            out.append(str(base / name) if str(base) != "." else name)
    return out


def _tar_files(output: Path, relatives: list[str], scratch: Path) -> FilesLayer:
    fd, name = tempfile.mkstemp(dir=scratch, suffix=".tar.gz")
    compressed = HashingWriter(os.fdopen(fd, "wb"))
    count = size = 0
    with compressed, gzip_writer(compressed) as gz:  # type: ignore[arg-type]
        plain = HashingWriter(gz)
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.addfile(_normalise(tar.gettarinfo(str(output), FILES_ROOT)))
            for relative in relatives:
                path = output / relative
                info = tar.gettarinfo(str(path), f"{FILES_ROOT}/{relative}")
                if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
                    log.warning("%s: skipped, not a file, directory or link", relative)
                    continue
                info = _normalise(info)
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                    count += 1
                    size += info.size
                else:
                    tar.addfile(info)
    digest = compressed.digest
    return FilesLayer(
        FileSection(Path(name), 0, compressed.size, digest),
        plain.digest,
        count,
        size,
    )


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = stat.S_IMODE(info.mode)
    return info
