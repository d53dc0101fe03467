"""RegistryStore against a real distribution registry (Debian's docker-registry),
plus scripted fake servers for what distribution 2.8 cannot show."""

from __future__ import annotations

import json
import logging

import pytest

from builder_resource.errors import (
    ConfigError,
    DigestMismatchError,
    NotFoundError,
    StoreError,
)
from builder_resource.oci.blobs import BytesBlob, FileSection
from builder_resource.oci.digest import sha256_digest
from builder_resource.oci.media_types import (
    DOCKER_MANIFEST,
    EMPTY_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from builder_resource.store import progress
from builder_resource.store.registry import RegistryStore, RetryPolicy
from builder_resource.store.transfer import parallel_push
from fixtures.http_fakes import FakeRegistry
from fixtures.registry_content import make_version

pytestmark = pytest.mark.integration

FAST = RetryPolicy(tries=5, backoff=0.01, cap=0.05)


def open_store(host: str, name: str, **kwargs) -> RegistryStore:
    kwargs.setdefault("insecure", True)
    kwargs.setdefault("policy", FAST)
    return RegistryStore(f"{host}/{name}", **kwargs)


def read_all(store: RegistryStore, digest: str, size: int | None = None) -> bytes:
    with store.open_blob(digest, size) as stream:
        return stream.read()


def test_version_round_trip(registry, repo_name):
    """An index with a Docker schema 2 image child and an OCI artifact child with
    the empty config goes in and comes back byte for byte, with its media types."""
    version = make_version("1.0")
    with open_store(registry.host, repo_name) as store:
        assert version.push(store, "1.0") == version.index_digest

    with open_store(registry.host, repo_name) as store:
        assert store.resolve_tag("1.0") == version.index_digest
        assert store.get_manifest("1.0") == (version.index, OCI_INDEX)
        assert store.get_manifest(version.index_digest) == (version.index, OCI_INDEX)
        image, artifact = version.manifests
        assert store.get_manifest(sha256_digest(image[0])) == (image[0], DOCKER_MANIFEST)
        assert store.get_manifest(sha256_digest(artifact[0])) == (artifact[0], OCI_MANIFEST)
        for blob in version.blobs:
            assert read_all(store, blob.digest, blob.size) == blob.data
        assert read_all(store, EMPTY_DIGEST) == b"{}"
        assert store.list_tags() == ["1.0"]

        for blob in version.blobs:
            assert read_all(store, blob.digest, blob.size) == blob.data


def test_missing_things(registry, repo_name):
    with open_store(registry.host, repo_name) as store:
        assert store.list_tags() == []
        assert store.resolve_tag("nope") is None
        assert not store.blob_exists(EMPTY_DIGEST)
        with pytest.raises(NotFoundError, match="manifest nope not found"):
            store.get_manifest("nope")
        with pytest.raises(NotFoundError, match="not found"):
            store.get_manifest(EMPTY_DIGEST)
        with pytest.raises(NotFoundError, match=f"blob {EMPTY_DIGEST} not found"):
            read_all(store, EMPTY_DIGEST)


def test_tags_real_registry_unsorted(registry, repo_name):
    """distribution 2.8 lists every tag at once, in no useful order."""
    version = make_version("t")
    tags = ["3", "b", "2", "a", "1"]
    with open_store(registry.host, repo_name) as store:
        version.push(store, tags[0])
        for tag in tags[1:]:
            store.push_manifest(version.index, OCI_INDEX, tag)
        assert sorted(store.list_tags()) == sorted(tags)
        assert all(store.resolve_tag(t) == version.index_digest for t in tags)


def test_manifest_keeps_media_type_and_refuses_a_wrong_one(registry, repo_name):
    version = make_version("m")
    image, media_type = version.manifests[0]
    with open_store(registry.host, repo_name) as store:
        parallel_push(store, version.blobs)
        store.push_manifest(image, media_type, "docker")
        assert store.get_manifest("docker") == (image, DOCKER_MANIFEST)
        with pytest.raises(StoreError) as info:
            store.push_manifest(image, OCI_MANIFEST, "wrong")
        message = str(info.value)
        assert "\n" not in message
        assert "400 MANIFEST_INVALID" in message and repo_name not in message.split(":")[0]


def test_present_blob_is_not_sent_again(registry, repo_name, fault_proxy):
    blob = BytesBlob(b"present " * 1000)
    with open_store(fault_proxy.host, repo_name) as store:
        store.push_blob(blob)
        store.push_blob(blob)
        parallel_push(store, [blob, blob, blob])
    assert fault_proxy.count("PUT", "/blobs/uploads/") == 1
    assert fault_proxy.count("POST", "/blobs/uploads/") == 1
    assert fault_proxy.count("HEAD", "/blobs/sha256:") == 3


def test_large_file_blob_streams_from_a_file_section(registry, repo_name, tmp_path):
    """A FileSection (a member of an archive) is pushed in place, then fetched."""
    data = bytes(range(256)) * 20_000  # ~5 MiB
    archive = tmp_path / "archive.bin"
    archive.write_bytes(b"HEADER" + data + b"TRAILER")
    section = FileSection(archive, 6, len(data), sha256_digest(data))
    with open_store(registry.host, repo_name) as store:
        store.push_blob(section)
        assert read_all(store, section.digest, section.size) == data


def test_upload_uses_the_location_it_is_given():
    """Relative Location with query parameters: urljoin, then ``&digest=``."""
    blob = BytesBlob(b"located")
    with FakeRegistry() as fake:
        fake.route("HEAD", r"/blobs/sha256:", lambda h: h.reply(404))
        fake.route(
            "POST",
            r"/v2/team/app/blobs/uploads/$",
            lambda h: h.reply(202, headers={"Location": "../../elsewhere/u1?_state=abc"}),
        )
        fake.route(
            "PUT",
            r"^/v2/team/app/elsewhere/u1\?_state=abc&digest=sha256%3A",
            lambda h: h.reply(201, headers={"Docker-Content-Digest": blob.digest}),
        )
        with open_store(fake.host, "team/app") as store:
            store.push_blob(blob)
        put = [s for s in fake.seen if s.method == "PUT"]
        assert len(put) == 1
        assert put[0].headers["Content-Length"] == str(blob.size)
        assert "Transfer-Encoding" not in put[0].headers


def test_wrong_bytes_on_download_are_an_error():
    good = b"the real content"
    digest = sha256_digest(good)
    with FakeRegistry() as fake:
        fake.route("GET", r"/blobs/sha256:", lambda h: h.reply(200, b"the evil content"))
        fake.route(
            "GET",
            r"/manifests/",
            lambda h: h.reply(200, b'{"mediaType":"x"}', {"Content-Type": "x"}),
        )
        with open_store(fake.host, "team/app") as store:
            with pytest.raises(DigestMismatchError, match="expected " + digest):
                read_all(store, digest, len(good))
            with pytest.raises(DigestMismatchError):
                read_all(store, digest, len(good) + 1)  # size known up front
            with pytest.raises(DigestMismatchError):
                store.get_manifest(digest)


def test_tag_listing_follows_link_pages():
    pages = {
        "": (["a", "b"], '</v2/team/app/tags/list?n=2&last=b>; rel="next"'),
        "b": (["c", "d"], None),
        "d": (["e"], None),
    }

    def tags(h):
        last = h.path.partition("last=")[2]
        names, link = pages[last]
        headers = {"Content-Type": "application/json"}
        if link:
            headers["Link"] = link
        elif last == "b":  # an absolute next link, with other links around it
            headers["Link"] = (
                f'<http://{fake.host}/v2/team/app/tags/list?n=2&last=a>; rel="prev", '
                f'<http://{fake.host}/v2/team/app/tags/list?n=2&last=d>; rel="next"'
            )
        h.reply(200, json.dumps({"name": "team/app", "tags": names}).encode(), headers)

    with FakeRegistry() as fake:
        fake.route("GET", r"/v2/team/app/tags/list", tags)
        with open_store(fake.host, "team/app") as store:
            assert store.list_tags() == ["a", "b", "c", "d", "e"]
        assert [s.path for s in fake.seen[1:]] == [
            "/v2/team/app/tags/list",
            "/v2/team/app/tags/list?n=2&last=b",
            "/v2/team/app/tags/list?n=2&last=d",
        ]


def test_redirected_download_does_not_carry_credentials():
    """Blob GETs often redirect to object storage: Authorization must stay home."""
    data = b"stored elsewhere"
    digest = sha256_digest(data)
    with (
        FakeRegistry(bind="127.0.0.2") as storage,
        FakeRegistry(challenge='Basic realm="fake"') as fake,
    ):
        storage.route("GET", r"/objects/", lambda h: h.reply(200, data))
        fake.route(
            "GET",
            r"/blobs/sha256:",
            lambda h: h.reply(307, headers={"Location": f"http://{storage.host}/objects/1"}),
        )
        with open_store(fake.host, "team/app", username="u", password="pw") as store:
            assert read_all(store, digest, len(data)) == data
        blob_get = [s for s in fake.seen if "/blobs/" in s.path][0]
        assert blob_get.headers["Authorization"].startswith("Basic ")
        assert "Authorization" not in storage.seen[0].headers


def test_invalid_names_are_refused_early():
    for bad in ("registry.example.org", "https://r.example.org/app", "r:5000/App", "r/a:1"):
        with pytest.raises(ConfigError):
            RegistryStore(bad)
    with (
        pytest.raises(StoreError, match="invalid tag"),
        open_store("127.0.0.1:9", "a") as store,
    ):
        store.get_manifest("../../etc")


def test_slow_transfers_log_progress(registry, repo_name, monkeypatch, caplog):
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    blob = BytesBlob(b"\x01" * (3 << 20))
    caplog.set_level(logging.INFO, logger="builder_resource")
    with open_store(registry.host, repo_name) as store:
        store.push_blob(blob)
        read_all(store, blob.digest, blob.size)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("builder_resource")]
    assert any(line.startswith("push ") and "of 3.0 MiB" in line for line in lines), lines
    assert any(line.startswith("pull ") and "/s" in line for line in lines), lines
