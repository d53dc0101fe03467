"""get (``in``): write a version into the destination. Orchestration only.

Everything is written into a staging folder inside the destination and moved into
place at the end, so a failed get leaves nothing half-written. Nothing written
depends on when or where get ran: Concourse caches gets.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from .attest.referrers import find, verify_version
from .attesting import verifier_for, write_attestations
from .config import GetParams, InRequest, parse_request
from .errors import ConfigError, NotFoundError
from .oci import media_types as mt
from .oci.archive_write import plan_image, plan_index
from .oci.descriptor import Descriptor
from .oci.manifest import ImageManifest, Index, image_config_summary
from .oci.platforms import choose, host_platform, platform_name, platforms_of
from .oci.rootfs import apply_layers
from .release import FILES_ROOT, StoredImage, StoredRelease, decode
from .store import Store, open_store
from .store.progress import human
from .store.transfer import Filling, ReusingStore, fetch_in_background

log = logging.getLogger(__name__)


def run(payload: Any, destination: Path, env: dict[str, str]) -> dict[str, Any]:
    request = parse_request(InRequest, payload)
    version, params = request.version, request.params
    store = open_store(**request.source.store_settings(), env=env)
    try:
        raw, _ = store.get_manifest(version.digest)
    except NotFoundError:
        raise NotFoundError(
            f"version {version.tag} ({version.digest}) no longer exists in {store.location}"
        ) from None
    release = decode(raw)
    verifier = verifier_for(request.source)
    if verifier is not None:  # before anything is written
        verify_version(store, version.digest, verifier)
    attestations = find(store, version.digest, verifier) if params.attestations else None
    selected = _select(release, params)
    resolved = [] if params.skip_download else [_resolve(store, i, params) for i, _ in selected]

    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".get-", dir=destination))
    try:
        (staging / "tag").write_text(version.tag)
        (staging / "digest").write_text(version.digest)
        if attestations is not None:
            write_attestations(staging / "attestations", attestations)
        if not params.skip_download:
            _write_files(store, release, staging)
            reusing = ReusingStore(store)  # layers shared by images: downloaded once
            for image, (_, with_rootfs) in zip(resolved, selected, strict=True):
                _write_image(store, reusing, image, staging, params.format, with_rootfs)
        for child in sorted(staging.iterdir()):
            target = destination / child.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(child, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    metadata = [{"name": "tag", "value": version.tag}]
    metadata += [{"name": f"image {i.name}", "value": i.descriptor.digest} for i in release.images]
    metadata += [
        {"name": f"image {r.image.name} platform", "value": r.platform}
        for r in resolved
        if r.index is not None
    ]
    return {"version": version.to_json(), "metadata": metadata}


def _select(release: StoredRelease, params: GetParams) -> list[tuple[StoredImage, bool]]:
    """The images to write, each with whether its rootfs is wanted."""
    by_name = {image.name: image for image in release.images}
    available = ", ".join(sorted(by_name)) or "none"
    wanted = params.images if params.images is not None else list(by_name)
    rootfs = params.rootfs
    rootfs_names = set(by_name) if rootfs is True else set(rootfs or [])
    for key, names in (("params.images", wanted), ("params.rootfs", rootfs_names)):
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise ConfigError(f"{key}: no image {', '.join(unknown)} in this version ({available})")
    names = list(dict.fromkeys([*wanted, *sorted(rootfs_names)]))
    return [(by_name[name], name in rootfs_names) for name in names]


@dataclass(frozen=True)
class _Resolved:
    """An image to write, its manifests fetched: for a multi-platform image, the
    chosen platform's manifest and every manifest its index lists."""

    image: StoredImage
    manifest: ImageManifest  # the one image of rootfs and format docker
    index: Index | None = None
    platform: str = ""  # the chosen platform, and its manifest's digest
    platform_digest: str = ""
    manifests: tuple[ImageManifest, ...] = ()


def _resolve(store: Store, image: StoredImage, params: GetParams) -> _Resolved:
    """Fetch an image's manifests, picking its platform if it has several: before
    anything is written, so that a platform not there fails at once."""
    raw, media_type = store.get_manifest(image.descriptor.digest)
    if image.descriptor.media_type not in mt.INDEXES:
        return _Resolved(image, ImageManifest.parse(raw, media_type))
    index = Index.parse(raw)
    wanted = params.platform or host_platform()
    chosen = choose(index.manifests, wanted)
    if chosen is None:
        there = ", ".join(platforms_of(index.manifests))
        origin = (
            "params.platform"
            if params.platform
            else "the platform get runs on; set params.platform"
        )
        raise ConfigError(f"image {image.name} has no {wanted} ({origin}); it has {there}")
    manifests = tuple(_manifest(store, child) for child in index.manifests)
    manifest = manifests[index.manifests.index(chosen)]
    return _Resolved(
        image, manifest, index, platform_name(chosen.platform), chosen.digest, manifests
    )


def _opener(store: Store) -> Callable[[Descriptor], AbstractContextManager[BinaryIO]]:
    return lambda d: store.open_blob(d.digest, d.size)


def _manifest(store: Store, descriptor: Descriptor) -> ImageManifest:
    raw, media_type = store.get_manifest(descriptor.digest)
    return ImageManifest.parse(raw, media_type)


def _write_files(store: Store, release: StoredRelease, staging: Path) -> None:
    """Unpack the files artifact: it holds the output directory as ``release/``."""
    manifest = _manifest(store, release.files)
    open_blob = _opener(store)
    unpacked = staging / ".files"
    apply_layers([partial(open_blob, layer) for layer in manifest.layers], unpacked)
    if (unpacked / FILES_ROOT).is_dir():
        os.replace(unpacked / FILES_ROOT, staging / FILES_ROOT)
    else:
        (staging / FILES_ROOT).mkdir()
    shutil.rmtree(unpacked)


def _write_image(
    store: Store,
    reusing: ReusingStore,
    resolved: _Resolved,
    staging: Path,
    fmt: str,
    with_rootfs: bool,
) -> None:
    """Download each blob once, into its place in the image archive, and apply the
    layers from those same bytes as they arrive: the next layers download while
    one is applied, and a layer that fails verification fails the apply (which
    then leaves nothing) and stops the downloads still running. A blob an
    earlier image of this get already has is copied from there (and verified).
    A multi-platform image is written whole as ``oci`` and ``oci-layout``; as
    ``docker`` (one image per archive), the chosen platform's."""
    image, manifest = resolved.image, resolved.manifest
    archive = staging / FILES_ROOT / image.path
    archive.parent.mkdir(parents=True, exist_ok=True)
    log.info("writing image %s (%s) as %s", image.name, image.descriptor.digest, fmt)
    if resolved.index is not None and fmt != "docker":
        planned = plan_index(
            archive, fmt, image.descriptor, resolved.index.raw, resolved.manifests, image.repo_tags
        )
    else:
        planned = plan_image(archive, fmt, manifest, image.repo_tags)
    planned.create()
    fillings = {
        slot.descriptor.digest: Filling(
            slot.descriptor.digest, slot.descriptor.size, slot.path, slot.offset
        )
        for slot in planned.slots
    }
    # the long transfers first, so that they overlap the short ones
    order = sorted(fillings.values(), key=lambda f: f.size, reverse=True)
    if with_rootfs:  # the applied image's in the order the applier wants them, then the rest
        wanted = dict.fromkeys(d.digest for d in [manifest.config, *manifest.layers])
        order = [fillings[d] for d in wanted] + [f for f in order if f.digest not in wanted]

    folder = staging / "images" / image.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "digest").write_text(image.descriptor.digest)
    (folder / "ref").write_text(f"{store.location}@{image.descriptor.digest}")
    if resolved.index is not None:
        log.info(
            "image %s: platform %s, %s", image.name, resolved.platform, resolved.platform_digest
        )
        (folder / "platform").write_text(resolved.platform)
        (folder / "platform-digest").write_text(resolved.platform_digest)
    reused = sum(f.size for f in fillings.values() if reusing.has(f.digest))
    started = time.monotonic()
    with fetch_in_background(reusing, order) as fetch:  # type: ignore[arg-type]
        if with_rootfs:
            log.info("applying %d layers of %s", len(manifest.layers), image.name)
            layers = [fillings[layer.digest].open for layer in manifest.layers]
            apply_layers(layers, folder / "rootfs")
            summary = image_config_summary(fillings[manifest.config.digest].read())
            metadata = {"env": summary["env"], "user": summary["user"]}
            (folder / "metadata.json").write_text(json.dumps(metadata))
    for filling in fillings.values():
        reusing.remember(filling)
    log.info(
        "image %s: %s in %d blob(s)%s%s in %.1f s",
        image.name,
        human(fetch.fetched),
        len(fillings),
        f" ({human(reused)} copied from an earlier image)" if reused else "",
        ", rootfs applied" if with_rootfs else "",
        time.monotonic() - started,
    )
