"""examples/multiarch end to end (issue 15): buildah builds one image for
linux/amd64 and linux/arm64 (FROM scratch and COPY: no emulation) into a manifest
list and pushes it whole to release/app.tar; put stores it in a real registry as
one image whose child is that index, check lists the version, and get gives it
back per platform. skopeo is the oracle for what was stored and what get wrote."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.registry import Registry, skopeo_env
from fixtures.tools import require

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "multiarch"
PLATFORMS = {"linux/amd64", "linux/arm64"}

pytestmark = pytest.mark.e2e


def skopeo(*args: str) -> bytes:
    done = subprocess.run(["skopeo", *args], capture_output=True, check=False, env=skopeo_env())
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def published(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict:
    require("buildah", "skopeo", "make")
    tmp = tmp_path_factory.mktemp("multiarch")
    put_dir = tmp / "put"
    shutil.copytree(EXAMPLE, put_dir / "src", ignore=shutil.ignore_patterns("release"))
    concourse = Concourse(tmp)
    source = {"repository": registry.repository("tests/multiarch"), "insecure": True}
    params = {"context": "src", "version": "1.0.0", "env": {"VERSION": "1.0.0"}}
    put = concourse.put(source, params, put_dir)
    assert put.returncode == 0, put.stderr
    archive = put_dir / "src" / "release" / "app.tar"
    return {
        "concourse": concourse,
        "source": source,
        "version": put.json["version"],
        "metadata": {m["name"]: m["value"] for m in put.json["metadata"]},
        "built": skopeo("inspect", "--raw", f"oci-archive:{archive}"),
    }


def test_the_build_wrote_an_index_of_two_platforms(published: dict) -> None:
    index = json.loads(published["built"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    }
    assert platforms == PLATFORMS


def test_the_stored_child_is_the_index_the_build_wrote(published: dict) -> None:
    repository = published["source"]["repository"]
    release = json.loads(
        skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{repository}@{published['version']['digest']}",
        )
    )
    (child,) = [
        m
        for m in release["manifests"]
        if m["annotations"]["org.concourse-builder-img.role"] == "image"
    ]
    assert child["digest"] == sha(published["built"])
    stored = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{repository}@{child['digest']}"
    )
    assert stored == published["built"]
    assert published["metadata"]["image app"] == child["digest"]
    assert set(published["metadata"]["image app platforms"].split()) == PLATFORMS
    # every platform's image is there, whole: skopeo copies the lot
    for platform in sorted(PLATFORMS):
        architecture = platform.split("/")[1]
        config = json.loads(
            skopeo(
                "inspect",
                "--config",
                "--tls-verify=false",
                "--override-arch",
                architecture,
                f"docker://{repository}@{child['digest']}",
            )
        )
        assert config["architecture"] == architecture


def test_check_lists_the_version(published: dict) -> None:
    concourse: Concourse = published["concourse"]
    assert concourse.check(published["source"]) == [published["version"]]


@pytest.mark.parametrize("architecture", ["amd64", "arm64"])
def test_get_gives_each_platform_as_rootfs_and_docker_archive(
    published: dict, architecture: str, tmp_path: Path
) -> None:
    concourse: Concourse = published["concourse"]
    dest = tmp_path / "get"
    params = {"rootfs": True, "platform": f"linux/{architecture}"}
    get = concourse.get(published["source"], published["version"], params, dest)
    assert get.returncode == 0, get.stderr
    folder = dest / "images" / "app"
    assert (folder / "rootfs" / "etc" / "app" / "arch").read_text() == f"{architecture}\n"
    assert (folder / "digest").read_text() == sha(published["built"])
    assert (folder / "platform").read_text() == f"linux/{architecture}"
    chosen = (folder / "platform-digest").read_text()
    entries = {
        m["platform"]["architecture"]: m["digest"]
        for m in json.loads(published["built"])["manifests"]
    }
    assert chosen == entries[architecture]
    archive = dest / "release" / "app.tar"
    config = json.loads(skopeo("inspect", "--config", f"docker-archive:{archive}"))
    assert config["architecture"] == architecture
    assert sha(skopeo("inspect", "--raw", f"oci-archive:{archive}")) == chosen


def test_get_as_oci_gives_the_whole_index(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    dest = tmp_path / "get"
    get = concourse.get(published["source"], published["version"], {"format": "oci"}, dest)
    assert get.returncode == 0, get.stderr
    archive = dest / "release" / "app.tar"
    assert (dest / "images" / "app" / "digest").read_text() == sha(published["built"])
    assert skopeo("inspect", "--raw", f"oci-archive:{archive}") == published["built"]
    # skopeo reads every platform's image out of it, blobs verified
    copied = tmp_path / "copy"
    skopeo("copy", "--all", f"oci-archive:{archive}", f"oci:{copied}:app")
    for architecture in ("amd64", "arm64"):
        config = json.loads(
            skopeo("inspect", "--config", "--override-arch", architecture, f"oci-archive:{archive}")
        )
        assert config["architecture"] == architecture


def test_a_platform_not_there_fails_in_one_line(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    get = concourse.get(
        published["source"], published["version"], {"platform": "linux/s390x"}, tmp_path / "get"
    )
    assert get.returncode == 1
    assert get.error_line.startswith(
        "error: image app has no linux/s390x (params.platform); it has "
    )
    assert set(get.error_line.split("it has ")[1].split(", ")) == PLATFORMS
