"""The store and skopeo read each other's work in a real registry: what the store
pushes, skopeo inspects and copies (each image by its digest); what skopeo pushes,
the store reads and verifies."""

from __future__ import annotations

import json
import subprocess

import pytest

from builder_resource.oci.digest import sha256_digest
from builder_resource.oci.media_types import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from builder_resource.store.registry import RegistryStore, RetryPolicy
from fixtures.registry import skopeo_env
from fixtures.registry_content import make_version, write_oci_layout
from fixtures.tools import require

pytestmark = pytest.mark.integration

FAST = RetryPolicy(tries=3, backoff=0.01)


def skopeo(*args: str) -> str:
    require("skopeo")
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, env=skopeo_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_skopeo_reads_what_the_store_pushed(registry, repo_name, tmp_path):
    version = make_version("interop")
    with RegistryStore(registry.repository(repo_name), insecure=True, policy=FAST) as store:
        version.push(store, "1.0")
    ref = f"docker://{registry.repository(repo_name)}"

    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"{ref}:1.0")
    assert raw.encode() == version.index
    image, image_type = version.manifests[0]
    artifact, _ = version.manifests[1]
    assert image_type == DOCKER_MANIFEST
    image_digest = sha256_digest(image)

    info = json.loads(skopeo("inspect", "--tls-verify=false", f"{ref}@{image_digest}"))
    assert info["Digest"] == image_digest
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert info["Layers"] == [json.loads(image)["layers"][0]["digest"]]
    assert info["Env"] == ["PATH=/usr/bin"]
    artifact_ref = f"{ref}@{sha256_digest(artifact)}"
    raw_artifact = skopeo("inspect", "--tls-verify=false", "--raw", artifact_ref)
    assert raw_artifact.encode() == artifact

    # a full copy by digest: skopeo fetches and verifies every blob
    out = f"oci:{tmp_path / 'out'}:x"
    skopeo("copy", "--src-tls-verify=false", f"{ref}@{image_digest}", out)
    layout_index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert len(layout_index["manifests"]) == 1


def test_store_reads_what_skopeo_pushed(registry, repo_name, tmp_path):
    manifest_digest = write_oci_layout(tmp_path / "layout", "1")
    ref = f"docker://{registry.repository(repo_name)}:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:1", ref)

    with RegistryStore(registry.repository(repo_name), insecure=True, policy=FAST) as store:
        assert store.list_tags() == ["v1"]
        digest = store.resolve_tag("v1")
        content, media_type = store.get_manifest("v1")
        assert media_type in (OCI_MANIFEST, DOCKER_MANIFEST)
        assert sha256_digest(content) == digest
        if media_type == OCI_MANIFEST:
            assert digest == manifest_digest  # skopeo kept the bytes
        manifest = json.loads(content)
        for desc in [manifest["config"], *manifest["layers"]]:
            with store.open_blob(desc["digest"], desc["size"]) as stream:
                data = stream.read()
            assert sha256_digest(data) == desc["digest"]
        assert store.get_manifest(digest) == (content, media_type)


def test_skopeo_copies_a_whole_version_index(registry, repo_name, tmp_path):
    """``skopeo copy --all`` of the index: the artifact child rides along. skopeo
    1.9 re-serialises the index itself (it drops ``artifactType``), so only the
    children keep their digests."""
    version = make_version("all")
    with RegistryStore(registry.repository(repo_name), insecure=True, policy=FAST) as store:
        version.push(store, "all")
    source = f"docker://{registry.repository(repo_name)}:all"
    target = f"docker://{registry.repository(repo_name + '-copy')}:all"
    skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", source, target)
    with RegistryStore(
        registry.repository(repo_name + "-copy"), insecure=True, policy=FAST
    ) as copy:
        content, media_type = copy.get_manifest("all")
        assert media_type == OCI_INDEX
        children = [d["digest"] for d in json.loads(content)["manifests"]]
        assert children == [sha256_digest(child) for child, _ in version.manifests]
        for child, child_type in version.manifests:
            assert copy.get_manifest(sha256_digest(child)) == (child, child_type)
