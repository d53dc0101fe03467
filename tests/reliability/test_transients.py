"""The two transient failures that used to fail a whole step (issue 12): the first
`GET /v2/` answered with a 5xx when `insecure` makes the client try two schemes,
and a manifest or tag list whose body is cut mid-answer. Both are retried with
backoff, as at every other request."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder_resource.store.registry import RegistryStore, RetryPolicy
from fixtures.concourse import Concourse
from fixtures.http_fakes import Fault, FaultProxy
from fixtures.projects import image_project

pytestmark = pytest.mark.integration


@pytest.fixture
def published(concourse: Concourse, fault_proxy, repo_name: str, tmp_path: Path):
    source = {"repository": f"{fault_proxy.host}/{repo_name}", "insecure": True}
    command = image_project(tmp_path / "put")
    put = concourse.put(
        source, {"context": "src", "command": command, "version": "1.0.0"}, tmp_path / "put"
    )
    assert put.returncode == 0, put.stderr
    fault_proxy.seen.clear()
    return source, put.json["version"], command


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_first_ping_is_retried_by_every_step(
    concourse: Concourse, fault_proxy, published, tmp_path: Path, status: int
) -> None:
    source, version, command = published
    fault_proxy.add(Fault("GET", r"^/v2/$", status, times=2))
    assert concourse.check(source) == [version]
    fault_proxy.add(Fault("GET", r"^/v2/$", status, times=2))
    got = concourse.get(source, version, None, tmp_path / "get")
    assert got.returncode == 0, got.stderr
    fault_proxy.add(Fault("GET", r"^/v2/$", status, times=2))
    params = {"context": "src", "command": command, "version": "1.0.1"}
    put = concourse.put(source, params, tmp_path / "put")
    assert put.returncode == 0, put.stderr
    pings = [s for s in fault_proxy.seen if s.path == "/v2/"]
    assert sum(1 for s in pings if s.faulted == status) == 6  # every fault was met


def test_a_failing_first_ping_over_https_is_retried_too(
    registry, registry_pki, repo_name: str, mocker
) -> None:
    """The mirror case: HTTPS tried first (as for any host but loopback), its ping
    answered 503: retried on HTTPS, not abandoned for plain HTTP."""
    proxy = FaultProxy(
        registry.host, tls=(str(registry_pki.server_cert), str(registry_pki.server_key))
    )
    try:
        mocker.patch(
            "builder_resource.store.registry.probe_schemes", return_value=("https", "http")
        )
        proxy.add(Fault("GET", r"^/v2/$", 503, times=2))
        policy = RetryPolicy(tries=5, backoff=0.01, cap=0.05)
        with RegistryStore(f"{proxy.host}/{repo_name}", insecure=True, policy=policy) as store:
            assert store.list_tags() == []
        assert [s.faulted for s in proxy.seen if s.path == "/v2/"] == [503, 503, None]
    finally:
        proxy.stop()


@pytest.mark.parametrize("path", [r"/manifests/", r"/tags/list"])
def test_a_body_cut_mid_answer_is_retried(
    concourse: Concourse, fault_proxy, published, tmp_path: Path, path: str
) -> None:
    source, version, _ = published
    fault_proxy.add(Fault("GET", path, "reset-body", times=2))
    if path == r"/tags/list":
        assert concourse.check(source) == [version]
    else:
        got = concourse.get(source, version, None, tmp_path / "get")
        assert got.returncode == 0, got.stderr
    assert sum(1 for s in fault_proxy.seen if s.faulted == "reset-body") == 2
