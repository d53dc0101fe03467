"""put's registry store, light client first (``store/light_first.py``), against
real registries: a version whose blobs are all there is published by the light
client alone, without importing requests; anything else goes to the full client,
with its answers and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder_resource.errors import StoreError
from builder_resource.oci.media_types import OCI_INDEX
from builder_resource.store.http import RetryPolicy
from builder_resource.store.light_first import LightFirstRegistry
from builder_resource.store.registry import RegistryStore
from fixtures.http_fakes import Fault
from fixtures.registry import Registry
from fixtures.registry_content import make_version

pytestmark = pytest.mark.integration

FAST = RetryPolicy(tries=3, backoff=0.01, cap=0.05)
RESOURCE = Path(__file__).resolve().parents[2] / "resource"


@pytest.mark.parametrize("kind", ["registry", "tls_registry", "basic_registry", "token_registry"])
def test_a_version_whose_blobs_are_there_is_pushed_by_the_light_client(
    kind: str, request: pytest.FixtureRequest, repo_name: str
) -> None:
    registry: Registry = request.getfixturevalue(kind)
    repository = registry.repository(repo_name)
    options = registry.client_options()
    version = make_version("again")
    with RegistryStore(repository, policy=FAST, **options) as full:
        first = version.push(full, "1.0.0")
        store = LightFirstRegistry(repository, env={}, **options)
        assert store.resolve_tag("1.0.1") is None
        tokens = registry.extra.get("tokens")
        before = len(tokens.requests) if tokens else 0
        again = version.push(store, "1.0.1")
        assert store.light_in_use and not store.full_built
        if tokens:  # the manifest PUTs asked for a push token
            push = (registry.username, (f"repository:{repo_name}:pull,push",))
            assert tokens.requests[before:] == [push]
        # The full client reads back exactly what was published.
        assert again == first == full.resolve_tag("1.0.1") == store.resolve_tag("1.0.1")
        assert full.get_manifest("1.0.1") == (version.index, OCI_INDEX)
        store.close()


def test_missing_blobs_are_pushed_by_the_full_client_and_a_surprise_hands_over(
    registry: Registry, fault_proxy, repo_name: str
) -> None:
    repository = f"{fault_proxy.host}/{repo_name}"
    version = make_version("new")
    store = LightFirstRegistry(repository, insecure=True, env={})
    # One manifest PUT fails once: the light client is unsure, the full one retries.
    fault_proxy.add(Fault("PUT", r"/manifests/sha256:", 500, times=1))
    digest = version.push(store, "1.0.0")
    assert store.full_built and not store.light_in_use
    assert fault_proxy.count("POST", "/blobs/uploads/") == len(version.blobs)
    failed = [s for s in fault_proxy.seen if s.method == "PUT" and s.faulted == 500]
    assert len(failed) == 1
    with RegistryStore(repository, insecure=True, policy=FAST) as full:
        assert full.resolve_tag("1.0.0") == digest
        for blob in version.blobs:
            assert full.blob_exists(blob.digest)
    store.close()


def test_errors_are_the_full_clients(basic_registry: Registry, repo_name: str) -> None:
    options = {**basic_registry.client_options(), "password": "definitely-wrong-pw"}
    repository = basic_registry.repository(repo_name)
    with pytest.raises(StoreError) as light_first:
        LightFirstRegistry(repository, env={}, **options).resolve_tag("1.0.0")
    with pytest.raises(StoreError) as full:
        RegistryStore(repository, policy=FAST, **options).resolve_tag("1.0.0")
    assert str(light_first.value) == str(full.value)
    assert "authentication failed" in str(light_first.value)
    assert "definitely-wrong-pw" not in str(light_first.value)


def test_a_proxy_in_the_way_means_the_full_client(
    registry: Registry, repo_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where requests would go through the environment's proxy, the light client
    steps aside (and the full client meets the proxy); where no_proxy names the
    registry, both go direct."""
    repository = registry.repository(repo_name)
    for name in ("HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    store = LightFirstRegistry(repository, insecure=True, env=dict(os.environ), policy=FAST)
    with pytest.raises(StoreError):
        store.resolve_tag("1.0")  # the full client, through the (dead) proxy
    assert store.full_built and not store.light_in_use
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    direct = LightFirstRegistry(repository, insecure=True, env=dict(os.environ))
    assert direct.resolve_tag("1.0") is None
    assert direct.light_in_use and not direct.full_built


def test_a_put_again_does_not_import_requests(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    """In a fresh interpreter, as put runs: HEAD every blob, PUT the manifests."""
    repository = registry.repository(repo_name)
    version = make_version("fresh")
    with RegistryStore(repository, insecure=True, policy=FAST) as full:
        expected = version.push(full, "1.0.0")
    (tmp_path / "index.json").write_bytes(version.index)
    code = (
        "import sys\n"
        "from builder_resource.oci.media_types import OCI_INDEX\n"
        "from builder_resource.store.light_first import LightFirstRegistry\n"
        "repository, index, *digests = sys.argv[1:]\n"
        "store = LightFirstRegistry(repository, insecure=True, env={})\n"
        "assert all(store.blob_exists(d) for d in digests)\n"
        "digest = store.push_manifest(open(index, 'rb').read(), OCI_INDEX, '1.0.1')\n"
        "print(digest, store.full_built, 'requests' in sys.modules)\n"
    )
    digests = [blob.digest for blob in version.blobs]
    done = subprocess.run(
        [sys.executable, "-c", code, repository, str(tmp_path / "index.json"), *digests],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(RESOURCE)},
        check=True,
    )
    assert done.stdout.split() == [expected, "False", "False"]
