"""opt/resource/check's fast path, end to end: for every kind of store and request,
its stdout, stderr and exit status are exactly the full path's
(``BUILDER_RESOURCE_FAST_CHECK=0``), and the trace line says which path ran and
what came from the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from builder_resource.fastcheck import Cache
from builder_resource.oci.media_types import OCI_INDEX
from builder_resource.store.layout import LayoutStore
from builder_resource.store.registry import RegistryStore, RetryPolicy
from fixtures.concourse import Concourse, StepResult
from fixtures.registry import Registry

pytestmark = pytest.mark.e2e

TRACE = "BUILDER_RESOURCE_CHECK_TRACE"


class Checker:
    """Runs check twice per request, fast and full, and insists they agree."""

    def __init__(self, concourse: Concourse, tmp: Path) -> None:
        self.concourse = concourse
        self.tmpdir = tmp / "check-tmp"
        self.tmpdir.mkdir()
        self.env: dict[str, str] = {"TMPDIR": str(self.tmpdir)}

    def run(self, request: dict[str, Any], raw: bytes | None = None) -> tuple[StepResult, str]:
        """(the fast path's result, its trace line)."""
        fast = self._run(request, raw, {**self.env, TRACE: "1"})
        full = self._run(request, raw, {**self.env, "BUILDER_RESOURCE_FAST_CHECK": "0"})
        lines = fast.stderr.splitlines()
        traces = [line for line in lines if line.startswith("check: ")]
        assert len(traces) == 1, fast.stderr
        rest = "".join(line + "\n" for line in lines if not line.startswith("check: "))
        assert (fast.returncode, fast.stdout, rest) == (full.returncode, full.stdout, full.stderr)
        return fast, traces[0]

    def versions(self, source: dict, version: dict | None = None) -> tuple[list, str]:
        result, trace = self.run({"source": source, "version": version})
        assert result.returncode == 0, result.stderr
        assert trace.startswith("check: fast path"), trace
        return result.json, trace

    def _run(self, request: dict, raw: bytes | None, env: dict[str, str]) -> StepResult:
        self.concourse.extra_env = env
        if raw is None:
            return self.concourse.run("check", request)
        import subprocess

        from fixtures.concourse import SCRIPTS, clean_env

        done = subprocess.run(
            [str(SCRIPTS / "check")],
            input=raw,
            env=clean_env(self.concourse.home, build=False, extra=env),
            capture_output=True,
            check=False,
        )
        return StepResult(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def checker(concourse: Concourse, tmp_path: Path) -> Checker:
    return Checker(concourse, tmp_path)


def push_tags(store: Any, *tags: str) -> dict[str, dict[str, str]]:
    out = {}
    for tag in tags:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "t": tag})
        digest = store.push_manifest(body.encode(), OCI_INDEX, tag)
        out[tag] = {"tag": tag, "digest": digest}
    return out


def registry_source(registry: Registry, repo_name: str) -> dict[str, Any]:
    source: dict[str, Any] = {"repository": registry.repository(repo_name)}
    if registry.username:
        source.update(username=registry.username, password=registry.password)
    if registry.ca_pem:
        source["ca_certs"] = [registry.ca_pem]
    else:
        source["insecure"] = True
    return source


def registry_store(source: dict[str, Any]) -> RegistryStore:
    return RegistryStore(
        source["repository"],
        username=source.get("username"),
        password=source.get("password"),
        insecure=source.get("insecure", False),
        ca_certs=source.get("ca_certs", []),
        policy=RetryPolicy(tries=2, backoff=0.01),
    )


def the_protocol(checker: Checker, source: dict[str, Any], store: Any) -> None:
    """Empty, no cursor, cursor at the newest, in the middle, gone, moved; tag_regex;
    semver order, then string order once a tag is not semver."""
    assert checker.versions(source)[0] == []
    v = push_tags(store, "1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0")
    assert checker.versions(source)[0] == [v["1.10.0"]]
    assert checker.versions(source, v["1.10.0"])[0] == [v["1.10.0"]]
    assert checker.versions(source, v["1.2.0-rc.1"])[0] == [
        v["1.2.0-rc.1"],
        v["1.2.0"],
        v["1.10.0"],
    ]
    gone = {"tag": "7.7.7", "digest": v["0.9.0"]["digest"]}
    assert checker.versions(source, gone)[0] == [v["1.10.0"]]
    moved = {"tag": "1.2.0", "digest": v["0.9.0"]["digest"]}
    assert checker.versions(source, moved)[0] == [v["1.10.0"]]
    assert checker.versions({**source, "tag_regex": r"^1\.2\."})[0] == [v["1.2.0"]]
    assert checker.versions({**source, "tag_regex": "^9"})[0] == []
    w = push_tags(store, "latest-build")  # string order now: 1.2.0 < 1.2.0-rc.1 < latest-…
    assert checker.versions(source, v["1.2.0"])[0] == [
        v["1.2.0"],
        v["1.2.0-rc.1"],
        w["latest-build"],
    ]


# -- registries -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["registry", "tls_registry", "basic_registry", "token_registry"])
def test_registry_checks_match_the_full_path(
    checker: Checker, kind: str, request: pytest.FixtureRequest, repo_name: str
) -> None:
    registry: Registry = request.getfixturevalue(kind)
    source = registry_source(registry, repo_name)
    with registry_store(source) as store:
        the_protocol(checker, source, store)
    _, trace = checker.versions(source)
    assert "source: cached" in trace and "probe: memo" in trace
    if kind == "token_registry":
        assert "token: memo" in trace


def test_cache_miss_then_hit(checker: Checker, registry: Registry, repo_name: str) -> None:
    source = registry_source(registry, repo_name)
    with registry_store(source) as store:
        v = push_tags(store, "1.0.0")
    result, first = checker.run({"source": source, "version": v["1.0.0"]})
    assert first == "check: fast path (source: validated, probe: fetched)"
    assert result.stderr.startswith(f"registry {registry.host}: using plain HTTP (insecure)\n")
    _, second = checker.run({"source": source, "version": v["1.0.0"]})
    assert second == "check: fast path (source: cached, probe: memo)"
    entries = sorted(os.listdir(Cache.for_env(checker.env).directory))
    assert [e.split("-")[0] for e in entries] == ["probe", "source"]


def test_passwords_never_reach_the_cache(
    checker: Checker, token_registry: Registry, repo_name: str
) -> None:
    source = registry_source(token_registry, repo_name)
    checker.versions(source)
    directory = Path(Cache.for_env(checker.env).directory)
    assert sorted(p.name.split("-")[0] for p in directory.iterdir()) == [
        "probe",
        "source",
        "token",
    ]
    for path in directory.iterdir():
        text = path.read_text()
        assert token_registry.password not in text  # the token is there, with its expiry
        assert token_registry.password not in path.name


def test_wrong_password_gives_the_same_one_line_error(
    checker: Checker, basic_registry: Registry, token_registry: Registry, repo_name: str
) -> None:
    for registry in (basic_registry, token_registry):
        source = registry_source(registry, repo_name)
        checker.versions(source)  # a good check first: the cache knows the registry
        result, trace = checker.run({"source": {**source, "password": "definitely-wrong"}})
        assert result.returncode == 1 and trace.startswith("check: full path")
        assert "authentication failed" in result.error_line
        assert "definitely-wrong" not in result.stderr
        assert registry.password not in result.stderr
        # ... and the right password works again afterwards, through the fast path.
        checker.versions(source)


def test_tls_trust_from_local_ca_certificate_or_none(
    checker: Checker, tls_registry: Registry, repo_name: str
) -> None:
    source = {"repository": tls_registry.repository(repo_name)}
    result, trace = checker.run({"source": source})
    assert result.returncode == 1 and "certificate" in result.error_line.lower()
    assert trace.startswith("check: full path (Untrusted")
    checker.env["LOCAL_CA_CERTIFICATE"] = tls_registry.ca_pem or ""
    assert checker.versions(source)[0] == []


def test_insecure_tls_on_loopback(checker: Checker, tls_registry: Registry, repo_name: str):
    """Plain HTTP first on loopback (a TLS port answers 400), then unverified HTTPS."""
    source = {"repository": tls_registry.repository(repo_name), "insecure": True}
    with registry_store(source) as store:
        v = push_tags(store, "1.0.0")
    for _ in range(2):
        result, _ = checker.run({"source": source, "version": v["1.0.0"]})
        assert result.json == [v["1.0.0"]] and "plain HTTP" not in result.stderr


def test_a_stale_cache_entry_falls_back_then_heals(
    checker: Checker, registry: Registry, repo_name: str
) -> None:
    source = registry_source(registry, repo_name)
    with registry_store(source) as store:
        v = push_tags(store, "1.0.0")
    checker.versions(source)
    cache = Cache.for_env(checker.env)
    cache.store("probe", f"{registry.host}\n1", {"scheme": "https", "challenge": None})
    result, trace = checker.run({"source": source})
    assert trace.startswith("check: full path") and result.json == [v["1.0.0"]]
    assert "probe: fetched" in checker.versions(source)[1]


def test_a_cache_that_cannot_be_written(
    checker: Checker, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    source = registry_source(registry, repo_name)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    for tmpdir in (str(blocker), "/proc/self"):
        checker.env["TMPDIR"] = tmpdir
        for _ in range(2):
            versions, trace = checker.versions(source)
            assert versions == [] and "source: validated" in trace and "probe: fetched" in trace


def test_a_cache_directory_open_to_others_is_ignored(
    checker: Checker, tmp_path: Path, registry: Registry, repo_name: str
) -> None:
    source = registry_source(registry, repo_name)
    directory = Path(Cache.for_env(checker.env).directory)
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    for _ in range(2):
        assert "source: validated" in checker.versions(source)[1]
    assert list(directory.iterdir()) == []


def test_proxies_and_netrc_leave_it_to_the_full_path(
    checker: Checker, registry: Registry, repo_name: str
) -> None:
    """requests would use them; the light client does not, so it steps aside,
    unless no_proxy names the registry (then requests goes direct too)."""
    source = registry_source(registry, repo_name)
    checker.env["HTTPS_PROXY"] = "http://127.0.0.1:9"  # the registry is plain HTTP
    result, trace = checker.run({"source": source})
    assert result.json == []
    assert trace == f"check: full path (Unsure: a proxy may be in the way to {registry.host})"
    checker.env["NO_PROXY"] = "localhost,127.0.0.0/8"
    result, trace = checker.run({"source": source})
    assert result.json == [] and trace.startswith("check: fast path")
    del checker.env["HTTPS_PROXY"], checker.env["NO_PROXY"]
    (checker.concourse.home / ".netrc").write_text("machine elsewhere login u password p\n")
    result, trace = checker.run({"source": source})
    assert result.json == [] and trace == "check: full path (Unsure: a netrc file)"


# -- layout directories -----------------------------------------------------------------


def test_layout_checks_match_the_full_path(checker: Checker, tmp_path: Path) -> None:
    root = tmp_path / "store"
    source = {"repository": str(root)}
    the_protocol(checker, source, LayoutStore(root))
    assert checker.versions({"repository": "file://" + str(root)})[0][-1]["tag"] == "latest-build"
    assert "source: cached" in checker.versions(source)[1]


def test_a_broken_layout_gives_the_full_paths_error(checker: Checker, tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "index.json").write_text('{"manifests": [{"digest": "sha256:x"}]}')
    result, trace = checker.run({"source": {"repository": str(root)}})
    assert result.returncode == 1 and trace.startswith("check: full path")
    result, trace = checker.run({"source": {"repository": "file://relative/store"}})
    assert result.returncode == 1 and "absolute path" in result.error_line


# -- requests the fast path leaves alone ------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        {"source": {"repositry": "/x"}},
        {"source": None},
        {"source": {"repository": "/x", "tag_regex": "("}},
        {"source": {"repository": "/x", "username": "u"}},
        {"source": {"repository": "h:5000/a", "insecure": "maybe"}},
        {"source": {"repository": "h:5000/a", "ca_certs": ["not a certificate"]}},
        {"source": {"repository": "h:5000/A"}},
        {"source": {"repository": "https://h:5000/a"}},
        {"source": {"repository": "/x"}, "version": {"tag": "1", "digest": "sha256:0"}},
        {"source": {"repository": "/x"}, "version": {"tag": "1", "digest": "x", "extra": 1}},
        {"source": {"repository": "/x"}, "params": {"a": 1}},
    ],
)
def test_invalid_requests_give_the_same_error(checker: Checker, request_: dict) -> None:
    if "params" in request_:  # go_json drops params it thinks empty; send it raw
        result, trace = checker.run(request_, json.dumps(request_).encode())
    else:
        result, trace = checker.run(request_)
    assert result.returncode == 1 and result.stdout == ""
    assert trace.startswith("check: full path")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"source": {"repository": "/x"}} {}'])
def test_unreadable_stdin_gives_the_same_error(checker: Checker, raw: bytes) -> None:
    result, trace = checker.run({}, raw)
    assert result.returncode == 1 and trace.startswith("check: full path")


def test_debug_takes_the_full_path(checker: Checker, tmp_path: Path) -> None:
    result, trace = checker.run({"source": {"repository": str(tmp_path / "s"), "debug": True}})
    assert (
        result.returncode == 0
        and result.json == []
        and trace == "check: full path (Fallback: debug)"
    )
