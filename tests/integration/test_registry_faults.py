"""Transient failures between the store and a real registry, injected by a proxy:
connection resets, 5xx and 429 are retried with backoff, a bounded number of
times, and an upload that breaks starts over from its source."""

from __future__ import annotations

import hashlib
import time

import pytest

from builder_resource.errors import StoreError
from builder_resource.oci.blobs import BytesBlob
from builder_resource.oci.media_types import OCI_INDEX
from builder_resource.store.registry import RegistryStore, RetryPolicy
from fixtures.http_fakes import FakeRegistry, Fault
from fixtures.registry_content import make_version

pytestmark = pytest.mark.integration

BLOB = r"/blobs/sha256:"
UPLOAD = r"/blobs/uploads/"


class CountingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> CountingSleep:
    return CountingSleep()


@pytest.fixture
def store(fault_proxy, repo_name, sleeps):
    policy = RetryPolicy(tries=5, backoff=0.5, cap=4.0, sleep=sleeps)
    with RegistryStore(f"{fault_proxy.host}/{repo_name}", insecure=True, policy=policy) as s:
        s.blob_exists(BytesBlob(b"warm up").digest)  # ping and learn the scheme first
        yield s


def test_reset_during_upload_starts_over_from_the_source(store, fault_proxy, sleeps):
    blob = BytesBlob(b"reset me " * 50_000)
    opened = []
    original = blob.open
    object.__setattr__(blob, "open", lambda: opened.append(1) or original())
    fault_proxy.add(Fault("PUT", UPLOAD, "reset"))
    store.push_blob(blob)
    assert len(opened) == 2  # the retried upload re-read its source
    assert fault_proxy.count("POST", UPLOAD) == 2  # a fresh upload session
    assert fault_proxy.count("PUT", UPLOAD) == 2
    assert sleeps.delays == [0.5]
    assert store.blob_exists(blob.digest)


def test_5xx_are_retried_with_doubling_backoff(store, fault_proxy, sleeps):
    fault_proxy.add(Fault("HEAD", BLOB, 503, times=2), Fault("POST", UPLOAD, 502))
    blob = BytesBlob(b"after 5xx")
    store.push_blob(blob)
    assert sleeps.delays == [0.5, 1.0, 0.5]  # two HEAD retries, then the upload restarts
    assert store.blob_exists(blob.digest)


def test_429_honours_retry_after(fault_proxy, repo_name):
    """Real sleeping: Retry-After says 1 s, the backoff alone would be 10 ms."""
    policy = RetryPolicy(tries=3, backoff=0.01)
    with RegistryStore(f"{fault_proxy.host}/{repo_name}", insecure=True, policy=policy) as store:
        version = make_version("429")
        version.push(store, "1")
        fault_proxy.add(Fault("GET", r"/manifests/1$", 429, headers={"Retry-After": "1"}))
        started = time.monotonic()
        assert store.get_manifest("1") == (version.index, OCI_INDEX)
        assert 0.95 <= time.monotonic() - started < 5


def test_retry_after_is_capped(store, fault_proxy, sleeps):
    fault_proxy.add(Fault("GET", r"/tags/list", 429, headers={"Retry-After": "3600"}))
    assert store.list_tags() == []
    assert sleeps.delays == [60.0]


def test_retries_are_bounded_and_the_error_is_one_line(store, fault_proxy, sleeps):
    fault_proxy.add(Fault("GET", r"/manifests/", 503, times=100))
    with pytest.raises(StoreError) as info:
        store.get_manifest("1")
    message = str(info.value)
    assert "\n" not in message
    assert "503 INJECTED" in message and "gave up after 5 tries" in message
    assert fault_proxy.count("GET", r"/manifests/") == 5
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]  # capped at 4 by this policy


def test_upload_that_keeps_failing_gives_up_and_leaves_no_blob(store, fault_proxy, sleeps):
    blob = BytesBlob(b"never lands " * 1000)
    fault_proxy.add(Fault("PUT", UPLOAD, "reset", times=100))
    with pytest.raises(StoreError, match="gave up after 5 tries"):
        store.push_blob(blob)
    assert fault_proxy.count("PUT", UPLOAD) == 5
    assert not store.blob_exists(blob.digest)
    assert store.list_tags() == []


def test_reset_before_a_manifest_answer_is_retried(store, fault_proxy):
    version = make_version("reset-manifest")
    version.push(store, "1")
    fault_proxy.add(
        Fault("GET", r"/manifests/1$", "reset"), Fault("HEAD", r"/manifests/1$", "reset")
    )
    assert store.get_manifest("1")[0] == version.index
    assert store.resolve_tag("1") == version.index_digest


def test_download_broken_midway_resumes_with_range(store, fault_proxy, sleeps):
    blob = BytesBlob(bytes(range(256)) * 8192)  # 2 MiB
    store.push_blob(blob)
    fault_proxy.add(Fault("GET", BLOB, "reset-body"))
    with store.open_blob(blob.digest, blob.size) as stream:
        assert stream.read() == blob.data
    gets = [s for s in fault_proxy.seen if s.method == "GET" and "/blobs/" in s.path]
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    assert gets[1].headers["Range"].startswith("bytes=") and gets[1].headers["Range"] != "bytes=0-"
    assert sleeps.delays == [0.5]


def test_resume_when_the_server_ignores_range(sleeps):
    """A server that answers a resumed GET with the whole body again: the bytes
    already read are skipped, and the result still verifies."""
    data = bytes(range(256)) * 8192  # 2 MiB
    ranges: list[str | None] = []

    def blob(h) -> None:
        ranges.append(h.headers.get("Range"))
        if len(ranges) > 1:
            h.reply(200, data)
            return
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[: len(data) // 2])
        h.wfile.flush()
        time.sleep(0.3)
        h.reset()

    policy = RetryPolicy(tries=3, backoff=0.5, sleep=sleeps)
    with FakeRegistry() as fake:
        fake.route("GET", BLOB, blob)
        with RegistryStore(f"{fake.host}/team/app", insecure=True, policy=policy) as store:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            with store.open_blob(digest, len(data)) as stream:
                assert stream.read() == data
    assert ranges[0] is None and ranges[1] == f"bytes={1 << 20}-"
