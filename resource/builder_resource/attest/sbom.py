"""What an image's root filesystem holds, as a CycloneDX 1.5 JSON document
(cyclonedx.org/docs/1.5/json), written by cyclonedx-python-lib.

The root filesystem is never unpacked: each layer is streamed once (several at
once, each on its own), and only the package databases are kept, folded in layer
order (later layers replace earlier files; whiteouts and opaque whiteouts,
image-spec ``layer.md``, remove them):

- Debian: ``var/lib/dpkg/status`` (deb822 paragraphs; packages whose ``Status``
  ends in ``installed``), and distroless's ``var/lib/dpkg/status.d/*``;
- Alpine: ``lib/apk/db/installed`` (or ``usr/lib/apk/db/installed``; ``P:`` name,
  ``V:`` version, ``A:`` architecture, ``L:`` license lines);
- Python: ``*.dist-info/METADATA`` (core metadata ``Name`` and ``Version``);
- an image without any of these (``FROM scratch``: static binaries): each
  executable regular file, as a ``file`` component with its SHA-256.

Each package becomes a component with its package URL (github.com/package-url
purl-spec: ``pkg:deb/<distro>/<name>@<version>?arch=``, ``pkg:apk/alpine/...``,
``pkg:pypi/<name>@<version>``); the image itself is the document's
``metadata.component``, named by its manifest digest.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, BinaryIO

from ..oci.compression import decompressing_reader
from ..oci.tar_stream import AREGTYPE, DIRTYPE, REGTYPE, TarStream
from ..store.transfer import parallel
from .statement import statement

PREDICATE_TYPE = "https://cyclonedx.org/bom"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
#: The largest package database kept in memory (a full Debian's status is ~2 MiB).
MAX_DATABASE = 64 << 20

_DPKG = "var/lib/dpkg/status"
_DPKG_D = "var/lib/dpkg/status.d/"
_APK = ("lib/apk/db/installed", "usr/lib/apk/db/installed")
_OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
_DIST_INFO = re.compile(r"(^|/)[^/]+\.dist-info/METADATA\Z")


@dataclass(frozen=True, order=True)
class Package:
    kind: str  # deb, apk, pypi
    name: str
    version: str
    arch: str = ""
    license: str = ""


def wanted(path: str) -> bool:
    return (
        path == _DPKG
        or (path.startswith(_DPKG_D) and "/" not in path[len(_DPKG_D) :])
        or path in _APK
        or path in _OS_RELEASE
        or bool(_DIST_INFO.search(path))
    )


Opener = Callable[[], AbstractContextManager[BinaryIO]]


#: Where :func:`package_files` keeps the executables it found: ``EXECUTABLES + path``
#: -> their ``sha256:<hex>``.
EXECUTABLES = "\0exec:"


def package_files(layers: Iterable[Opener]) -> dict[str, bytes]:
    """The package databases of the root filesystem the layers make, by path, and
    its executables' digests (under :data:`EXECUTABLES`)."""
    kept: dict[str, bytes] = {}
    for layer in _scan_all(list(layers)):  # in layer order: each hides what is below it
        for key in list(kept):
            if _hidden(key.removeprefix(EXECUTABLES), layer):
                del kept[key]
        kept.update(layer.added)
    return kept


@dataclass(frozen=True)
class _LayerScan:
    """What one layer adds and hides, found without the layers below it, so that
    the layers can be read at once and folded in order afterwards."""

    added: dict[str, bytes]
    removed: AbstractSet[str]  # whited out, or replaced by a non-directory: trees
    replaced: AbstractSet[str]  # replaced by a directory: the path alone
    opaque: AbstractSet[str]  # directories whose lower contents it hides


def _scan_all(layers: list[Opener]) -> list[_LayerScan]:
    """Each layer's scan, several at once: decompression is most of the time and
    isal (like zlib and zstandard) releases the GIL while it runs. The error of the
    first failing layer, in layer order, is raised once no scan is running."""
    workers = min(os.cpu_count() or 1, 4)
    return parallel([partial(_scan, layer) for layer in layers], workers, name="sbom-scan")


def _scan(open_layer: Opener) -> _LayerScan:
    """One layer's package databases, executables' digests and hidden paths."""
    added: dict[str, bytes] = {}
    removed: set[str] = set()
    replaced: set[str] = set()
    opaque: set[str] = set()
    with open_layer() as raw, _scratch() as scratch:
        stream = TarStream(decompressing_reader(raw))
        while (member := stream.next()) is not None:
            path = _clean(member.name)
            base = path.rsplit("/", 1)[-1]
            parent = path[: len(path) - len(base)]
            if base == ".wh..wh..opq":
                opaque.add(parent.rstrip("/"))
            elif base.startswith(".wh."):
                removed.add(parent + base[len(".wh.") :])
            elif member.type == DIRTYPE:
                replaced.add(path)
            else:
                removed.add(path)
                if member.type not in (REGTYPE, AREGTYPE):
                    continue
                if wanted(path):
                    if member.size <= MAX_DATABASE:
                        added[path] = _read(stream, scratch)
                elif member.mode & 0o111:
                    added[EXECUTABLES + path] = _sha256(stream, scratch).encode()
    return _LayerScan(added, removed, replaced, opaque)


def _hidden(path: str, layer: _LayerScan) -> bool:
    """Whether a lower layer's ``path`` is gone after ``layer``."""
    removed, opaque = layer.removed, layer.opaque
    if path in removed or path in layer.replaced or "" in opaque:
        return True
    parts = path.split("/")
    for i in range(1, len(parts)):
        ancestor = "/".join(parts[:i])
        if ancestor in removed or ancestor in opaque:
            return True
    return False


def packages(files: dict[str, bytes]) -> list[Package]:
    found: set[Package] = set()
    for path, data in files.items():
        if path.startswith(EXECUTABLES):
            continue
        text = data.decode("utf-8", "replace")
        if path == _DPKG or path.startswith(_DPKG_D):
            found.update(_dpkg(text))
        elif path in _APK:
            found.update(_apk(text))
        elif path.endswith("/METADATA"):
            found.update(_dist_info(text))
    return sorted(found)


def distro(files: dict[str, bytes]) -> tuple[str, str]:
    """(ID, VERSION_ID) of os-release, for the deb package URLs' namespace."""
    for path in _OS_RELEASE:
        if path in files:
            fields = dict(
                line.split("=", 1)
                for line in files[path].decode(errors="replace").splitlines()
                if "=" in line
            )
            return fields.get("ID", "").strip("\"'"), fields.get("VERSION_ID", "").strip("\"'")
    return "", ""


def cyclonedx(
    image_name: str, manifest_digest: str, files: dict[str, bytes], created: datetime
) -> bytes:
    """The CycloneDX 1.5 JSON document of one image."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    distro_id, distro_version = distro(files)
    # Reproducible: the serial number follows from the image, the time from the put.
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"{image_name}@{manifest_digest}"))
    bom.metadata.timestamp = created
    root = Component(
        name=image_name, version=manifest_digest, type=ComponentType.CONTAINER, bom_ref="image"
    )
    bom.metadata.component = root
    components = []
    for package in packages(files):
        qualifiers = {"arch": package.arch} if package.arch else {}
        namespace = None
        if package.kind == "deb":
            namespace = distro_id or "debian"
            if distro_id and distro_version:
                qualifiers["distro"] = f"{distro_id}-{distro_version}"
        elif package.kind == "apk":
            namespace = distro_id or "alpine"
        purl = PackageURL(
            type=package.kind,
            namespace=namespace,
            name=package.name,
            version=package.version,
            qualifiers=qualifiers or None,
        )
        components.append(
            Component(
                name=package.name,
                version=package.version,
                type=ComponentType.LIBRARY,
                purl=purl,
                bom_ref=purl.to_string(),
            )
        )
    if not components:  # no package database: the executables are what it holds
        components = [
            _file_component(key, data)
            for key, data in sorted(files.items())
            if key.startswith(EXECUTABLES)
        ]
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's advice on dependency graphs
        return JsonV1Dot5(bom).output_as_string(indent=None).encode()


def sbom_statement(image_name: str, manifest_digest: str, document: bytes) -> bytes:
    """The CycloneDX document as an in-toto statement about the image (the
    predicate type cosign's ``attest --type cyclonedx`` uses)."""
    import json

    return statement([(image_name, manifest_digest)], PREDICATE_TYPE, json.loads(document))


def _file_component(key: str, digest: bytes) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType

    path = "/" + key.removeprefix(EXECUTABLES)
    return Component(
        name=path,
        type=ComponentType.FILE,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest.decode()[len("sha256:") :])],
        bom_ref=f"file:{path}",
    )


def _sha256(stream: TarStream, scratch: BinaryIO) -> str:
    import hashlib

    with _spilled(stream, scratch) as data:
        return "sha256:" + hashlib.file_digest(data, "sha256").hexdigest()


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _read(stream: TarStream, scratch: BinaryIO) -> bytes:
    with _spilled(stream, scratch) as data:
        return data.read()


def _scratch() -> BinaryIO:
    """An empty unbuffered file for members' data, one at a time (TarStream writes
    data only to a file descriptor). One per layer: a file per member cost more to
    create and drop than most members took to read. On disk, not in memory: an
    executable may be a static binary of a gigabyte."""
    return tempfile.TemporaryFile(buffering=0)


@contextmanager
def _spilled(stream: TarStream, scratch: BinaryIO) -> Iterator[BinaryIO]:
    """``scratch`` holding the current member's data, read from its start; emptied
    afterwards so that a large executable's pages are not kept."""
    stream.copy_data(scratch.fileno())
    scratch.seek(0)
    try:
        yield scratch
    finally:
        scratch.seek(0)
        scratch.truncate()


def _paragraphs(text: str) -> Iterable[dict[str, str]]:
    """deb822-like paragraphs: ``Key: value`` lines (continuations skipped),
    separated by blank lines."""
    fields: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                yield fields
            fields = {}
        elif not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    return


def _dpkg(text: str) -> Iterable[Package]:
    for fields in _paragraphs(text):
        status = fields.get("Status", "install ok installed")
        if fields.get("Package") and fields.get("Version") and status.endswith(" installed"):
            arch = fields.get("Architecture", "")
            yield Package("deb", fields["Package"], fields["Version"], arch)


def _apk(text: str) -> Iterable[Package]:
    for fields in _paragraphs(text):
        if fields.get("P") and fields.get("V"):
            yield Package("apk", fields["P"], fields["V"], fields.get("A", ""), fields.get("L", ""))


def _dist_info(text: str) -> Iterable[Package]:
    header = text.split("\n\n", 1)[0]
    for fields in _paragraphs(header):
        if fields.get("Name") and fields.get("Version"):
            name = re.sub(r"[-_.]+", "-", fields["Name"]).lower()  # PEP 503
            yield Package("pypi", name, fields["Version"])
