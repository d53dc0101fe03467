"""Multi-platform images (issue 15): an archive holding an index of several platforms
is stored as one image whose child is that index, byte for byte; get picks a
platform for rootfs and format docker, and gives the whole index back as oci and
oci-layout. Archives in each builder's shape (tests/fixtures/multi_platform.py),
a real layout store, put's collecting and get's run in process."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from builder_resource import get, put
from builder_resource import release as rel
from builder_resource.config import GetParams
from builder_resource.errors import ConfigError
from builder_resource.oci import platforms
from builder_resource.oci.archive_read import ArchiveImage, ArchiveIndex, read_image_archive
from builder_resource.oci.descriptor import Descriptor
from builder_resource.oci.prepare import PreparedIndex, prepare
from builder_resource.publish import publish
from builder_resource.store.layout import LayoutStore
from fixtures.multi_platform import SHAPES, write_docker_set, write_multi_platform

ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- reading and preparing ------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_is_read_as_one_multi_platform_image(shape: str, tmp_path: Path) -> None:
    written = write_multi_platform(tmp_path / "app.tar", shape)
    found = read_image_archive(tmp_path / "app.tar")
    assert isinstance(found, ArchiveIndex)
    prepared = prepare(found, tmp_path)
    assert isinstance(prepared, PreparedIndex)
    assert prepared.platforms == ("linux/amd64", "linux/arm64")
    # each platform's manifest byte for byte, and every blob it names
    assert [image.raw for image in prepared.images] == list(written.manifests.values())
    assert {b.digest for b in prepared.blobs} <= set(written.blobs)
    if written.index is not None:  # the builder's index, byte for byte
        assert prepared.raw == written.index
        assert prepared.manifests[-1] == (written.index, found.media_type)
    else:  # no index blob in the archive: one is written, naming each platform
        entries = json.loads(prepared.raw)["manifests"]
        assert [(e["digest"], e["platform"]["architecture"]) for e in entries] == [
            (sha(m), m_platform.split("/")[1]) for m_platform, m in written.manifests.items()
        ]


def test_a_docker_archive_set_becomes_an_index_of_its_platforms(tmp_path: Path) -> None:
    write_docker_set(tmp_path / "app.tar")
    found = read_image_archive(tmp_path / "app.tar")
    assert isinstance(found, ArchiveIndex)
    prepared = prepare(found, tmp_path)
    assert isinstance(prepared, PreparedIndex)
    assert prepared.platforms == ("linux/amd64", "linux/arm64")
    index = json.loads(prepared.raw)
    assert [e["digest"] for e in index["manifests"]] == [i.manifest_digest for i in prepared.images]
    # the manifests come first, the index last: a registry wants them in that order
    assert [sha(raw) for raw, _ in prepared.manifests] == [
        *(i.manifest_digest for i in prepared.images),
        prepared.manifest_digest,
    ]


def test_a_docker_archive_of_two_images_of_one_platform_stays_a_file(tmp_path: Path) -> None:
    write_docker_set(tmp_path / "app.tar", ("amd64", "amd64"))
    assert read_image_archive(tmp_path / "app.tar") is None


def test_a_single_platform_archive_is_still_one_image(tmp_path: Path) -> None:
    write_multi_platform(tmp_path / "app.tar", "flat", ("amd64",))
    assert isinstance(read_image_archive(tmp_path / "app.tar"), ArchiveImage)


# --- put and get through a layout store -----------------------------------------------


def _publish(tmp_path: Path, shape: str, attestation: bool = False) -> dict[str, Any]:
    """put's collecting of an output directory holding ``app.tar``, published."""
    output = tmp_path / "release"
    output.mkdir()
    written = write_multi_platform(output / "app.tar", shape, attestation=attestation)
    (output / "notes.txt").write_text("notes\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    release = put._release(output, scratch, {})
    store = tmp_path / "store"
    digest = publish(LayoutStore(store), rel.encode(release), "1.0")
    return {
        "store": store,
        "version": {"tag": "1.0", "digest": digest},
        "written": written,
        "metadata": put._metadata("1.0", release, "buildah", None),
    }


def _get(stored: dict[str, Any], dest: Path, params: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "source": {"repository": str(stored["store"])},
        "version": stored["version"],
        "params": params,
    }
    return get.run(payload, dest, {})


def test_put_stores_the_index_as_the_image_child_and_lists_the_platforms(tmp_path: Path) -> None:
    stored = _publish(tmp_path, "buildah")
    written = stored["written"]
    store = LayoutStore(stored["store"])
    raw, _ = store.get_manifest(stored["version"]["digest"])
    release = rel.decode(raw)
    (image,) = release.images
    assert image.descriptor.media_type == "application/vnd.oci.image.index.v1+json"
    assert image.descriptor.digest == sha(written.index)
    assert store.get_manifest(image.descriptor.digest)[0] == written.index
    for manifest in written.manifests.values():
        assert store.get_manifest(sha(manifest))[0] == manifest
    for blob_digest, blob in written.blobs.items():
        with store.open_blob(blob_digest) as f:
            assert f.read() == blob
    metadata = {m["name"]: m["value"] for m in stored["metadata"]}
    assert metadata["image app"] == sha(written.index)
    assert metadata["image app platforms"] == "linux/amd64 linux/arm64"


@pytest.mark.parametrize("shape", SHAPES)
def test_get_gives_the_chosen_platform_as_rootfs_and_docker(shape: str, tmp_path: Path) -> None:
    stored = _publish(tmp_path, shape)
    dest = tmp_path / "get"
    out = _get(stored, dest, {"rootfs": True, "platform": "linux/arm64"})
    arm64 = stored["written"].manifests["linux/arm64"]
    folder = dest / "images" / "app"
    assert (folder / "rootfs" / "etc" / "arch").read_text() == "arm64\n"
    assert json.loads((folder / "metadata.json").read_text())["env"] == ["ARCH=arm64"]
    stored_child = (folder / "digest").read_text()
    assert stored_child != sha(arm64)  # the digest of what was stored: the index
    assert (folder / "platform-digest").read_text() == sha(arm64)
    assert (folder / "platform").read_text() == "linux/arm64"
    assert {"name": "image app platform", "value": "linux/arm64"} in out["metadata"]
    with tarfile.open(dest / "release" / "app.tar") as tar:  # format docker: one image
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        docker = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert [m["digest"] for m in index["manifests"]] == [sha(arm64)]
    assert len(docker) == 1
    assert (dest / "release" / "notes.txt").read_text() == "notes\n"


@pytest.mark.parametrize("fmt", ["oci", "oci-layout"])
def test_get_gives_the_whole_index_back_as_oci(fmt: str, tmp_path: Path) -> None:
    stored = _publish(tmp_path, "buildkit", attestation=True)
    written = stored["written"]
    dest = tmp_path / "get"
    # with the rootfs, whose blobs come first: the other platform's must follow
    _get(stored, dest, {"format": fmt, "platform": "linux/amd64", "rootfs": True})
    archive = dest / "release" / "app.tar"
    layout = archive if fmt == "oci-layout" else tmp_path / "unpacked"
    if fmt == "oci":
        with tarfile.open(archive) as tar:
            # filter where this Python has it (3.11.4+; the image's Debian 3.11.2 not)
            tar.extractall(layout, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [sha(written.index)]
    # the index, every manifest it lists (the attestation's too) and their blobs
    for blob_digest, blob in written.blobs.items():
        assert (layout / "blobs" / "sha256" / blob_digest[7:]).read_bytes() == blob
    assert (dest / "images" / "app" / "digest").read_text() == sha(written.index)


def test_get_defaults_to_the_platform_it_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _publish(tmp_path, "docker-list")
    monkeypatch.setattr(get, "host_platform", lambda: "linux/arm64")
    _get(stored, tmp_path / "get", {"rootfs": True})
    assert (tmp_path / "get/images/app/rootfs/etc/arch").read_text() == "arm64\n"


def test_a_platform_not_there_fails_in_one_line_naming_those_there(tmp_path: Path) -> None:
    stored = _publish(tmp_path, "buildah", attestation=True)
    dest = tmp_path / "get"
    with pytest.raises(ConfigError) as failed:
        _get(stored, dest, {"platform": "linux/s390x"})
    assert str(failed.value) == (
        "image app has no linux/s390x (params.platform); it has linux/amd64, linux/arm64"
    )
    assert not dest.exists() or not any(dest.iterdir())  # nothing written


def test_the_default_platform_not_there_says_to_set_params_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _publish(tmp_path, "buildah")
    monkeypatch.setattr(get, "host_platform", lambda: "linux/riscv64")
    with pytest.raises(ConfigError, match=r"no linux/riscv64 \(the platform get runs on; set "):
        _get(stored, tmp_path / "get", {})


# --- platforms and params ---------------------------------------------------------------


def _entry(architecture: str, variant: str = "", os: str = "linux") -> Descriptor:
    platform = {"os": os, "architecture": architecture}
    if variant:
        platform["variant"] = variant
    return Descriptor("m", "sha256:" + f"{len(architecture + variant):064x}", 1, platform=platform)


def test_choose_matches_os_architecture_and_a_variant_when_given() -> None:
    entries = [_entry("unknown", os="unknown"), _entry("arm", "v6"), _entry("arm", "v7")]
    assert platforms.choose(entries, "linux/arm/v7") is entries[2]
    assert platforms.choose(entries, "linux/arm") is entries[1]
    assert platforms.choose(entries, "linux/amd64") is None
    assert platforms.choose(entries, "unknown/unknown") is None  # attestations are no image
    assert platforms.platforms_of(entries) == ["linux/arm/v6", "linux/arm/v7"]


def test_host_platform_is_named_as_images_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for machine, expected in (("x86_64", "linux/amd64"), ("aarch64", "linux/arm64")):
        monkeypatch.setattr(platforms._host, "machine", lambda m=machine: m)
        monkeypatch.setattr(platforms._host, "system", lambda: "Linux")
        assert platforms.host_platform() == expected
    monkeypatch.setattr(platforms._host, "machine", lambda: "armv7l")
    assert platforms.host_platform() == "linux/arm/v7"


def test_params_platform_is_os_slash_architecture() -> None:
    assert GetParams.model_validate({"platform": "linux/arm/v7"}).platform == "linux/arm/v7"
    for bad in ("arm64", "linux/", "linux/arm64/v8/x", "Linux/AMD64"):
        with pytest.raises(ValueError):
            GetParams.model_validate({"platform": bad})


# --- the example's img path, against img v0.5.11's CLI ------------------------------------

#: ``img build``'s flags in v0.5.11 (shared/reference/img.md §3), with whether they take a value
IMG_BUILD_FLAGS = {
    "--build-arg": True,
    "--cache-from": True,
    "--cache-to": True,
    "-f": True,
    "--file": True,
    "--label": True,
    "--no-cache": False,
    "--no-console": False,
    "-o": True,
    "--output": True,
    "--platform": True,
    "-t": True,
    "--tag": True,
    "--target": True,
}


def test_the_multiarch_example_calls_img_build_as_v0511_takes_it(tmp_path: Path) -> None:
    """With DOCKER=img the example builds both platforms in one `img build`, writing
    BuildKit's oci archive (index.json naming the index) straight to release/."""
    example = ROOT / "examples" / "multiarch"
    done = subprocess.run(
        ["make", "-s", "-n", "-C", str(example), "-B", "release", "DOCKER=img"],
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]
    builds = [c for c in commands if c[:2] == ["img", "build"]]
    assert len(builds) == 1, done.stdout
    argv = builds[0]
    context, flags = argv[-1], argv[2:-1]
    assert context == "app" and (example / context / "Dockerfile").is_file()
    values: dict[str, str] = {}
    while flags:
        flag = flags.pop(0)
        assert flag in IMG_BUILD_FLAGS, f"img v0.5.11's build has no {flag}"
        values[flag] = flags.pop(0) if IMG_BUILD_FLAGS[flag] else ""
    assert values["--platform"] == "linux/amd64,linux/arm64"
    assert values["-o"] == f"type=oci,dest={example / 'release' / 'app.tar'}"
    assert not any("buildah" in c[0] for c in commands)
