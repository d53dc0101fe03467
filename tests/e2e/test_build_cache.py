"""`source.cache`: the builder's layer cache kept in the registry, beside the
versions, so that a put on a fresh worker (empty builder storage) starts warm.
Real buildah (vfs, chroot) behind opt/resource/out, a real docker-registry, plain
and TLS with a password. A cache never breaks a build nor makes a version: an
unreachable cache, a refused push and a corrupt entry each give a cold build."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.tools import require

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SLOW_STEP = "/bin/busybox sleep 1 && /bin/busybox mkdir -p /work && echo slow > /work/slow"
DOCKERFILE = f"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "{SLOW_STEP}"]
COPY note.txt /work/note.txt
"""
PULLED = "Cache pulled from remote"


def project(sources: Path, note: str = "one") -> dict:
    """A context whose Makefile says `$(DOCKER) build -t x .`, knowing nothing of caches."""
    src = sources / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "Dockerfile").write_text(DOCKERFILE)
    (src / "note.txt").write_text(note + "\n")
    shutil.copy(shutil.which("busybox") or "/bin/busybox", src / "busybox")
    (src / "Makefile").write_text("release:\n\t$(DOCKER) build -t localhost/cached:1 .\n")
    return {"context": "src"}


def fresh_worker(concourse: Concourse, tmp_path: Path, name: str) -> None:
    """A new, empty builder storage for the next put: a worker that never built."""
    root = tmp_path / "workers" / name
    conf = root / "storage.conf"
    root.mkdir(parents=True)
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    concourse.extra_env["CONTAINERS_STORAGE_CONF"] = str(conf)


def put(concourse: Concourse, source: dict, tmp_path: Path, version: str, worker: str, **kw):
    fresh_worker(concourse, tmp_path, worker)
    sources = tmp_path / f"put-{worker}"
    params = {**project(sources, **kw), "version": version}
    result = concourse.put({**source, "images": ["localhost/cached:1"]}, params, sources)
    return result


def tags(registry, repository: str) -> list[str]:
    """The repository's tags, read from the registry itself; referrers' tags
    (``sha256-<hex>``, attestations) are not versions and are left out."""
    request = urllib.request.Request(f"{registry.url}/v2/{repository}/tags/list")
    if registry.username:
        token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            found = json.loads(response.read()).get("tags") or []
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise
    return [tag for tag in found if not tag.startswith("sha256-")]


@pytest.fixture(autouse=True)
def _buildah() -> None:
    require("buildah", "busybox")


@pytest.mark.parametrize("kind", ["plain", "tls-password"])
def test_a_fresh_worker_starts_warm(
    kind: str, concourse: Concourse, registry, basic_registry, repo_name: str, tmp_path: Path
) -> None:
    target = registry if kind == "plain" else basic_registry
    source = {"repository": f"{target.host}/{repo_name}", "cache": True}
    source.update(target.client_options())
    cold = put(concourse, source, tmp_path, "1.0.0", "cold")
    assert cold.returncode == 0, cold.stderr[-3000:]
    assert PULLED not in cold.stderr
    assert f"build cache: {target.host}/{repo_name}-cache" in cold.stderr

    warm = put(concourse, source, tmp_path, "1.0.1", "warm")
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert warm.stderr.count(PULLED) == 3  # COPY, RUN and COPY: nothing rebuilt
    # A change to the last layer rebuilds that layer only.
    changed = put(concourse, source, tmp_path, "1.0.2", "changed", note="two")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert changed.stderr.count(PULLED) == 2
    # The cache lives beside the versions, whose tags stay exactly the versions.
    assert sorted(tags(target, repo_name)) == ["1.0.0", "1.0.1", "1.0.2"]
    assert len(tags(target, f"{repo_name}-cache")) >= 4
    assert target.password is None or target.password not in warm.stderr


def test_an_unreachable_cache_means_a_cold_build(
    concourse: Concourse, registry, repo_name: str, tmp_path: Path
) -> None:
    source = {
        "repository": f"{registry.host}/{repo_name}",
        "insecure": True,
        "cache": {"repository": "127.0.0.1:9/nothing-listens-here"},
    }
    result = put(concourse, source, tmp_path, "1.0.0", "w")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("build cache: ")]
    assert len(warnings) == 1 and warnings[0].endswith("; building without it"), warnings
    assert "127.0.0.1:9/nothing-listens-here" in warnings[0]
    assert tags(registry, repo_name) == ["1.0.0"]


def test_a_refused_push_means_a_cold_build(
    concourse: Concourse, registry, basic_registry, repo_name: str, tmp_path: Path
) -> None:
    """The cache in a registry where the store's (absent) credentials may not push."""
    source = {
        "repository": f"{registry.host}/{repo_name}",
        "insecure": True,
        "cache": {"repository": f"{basic_registry.host}/{repo_name}-cache"},
    }
    result = put(concourse, source, tmp_path, "1.0.0", "w")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("build cache: ")]
    assert len(warnings) == 1 and "building without it" in warnings[0], warnings
    assert tags(registry, repo_name) == ["1.0.0"]


def test_a_corrupt_entry_means_a_cold_step(
    concourse: Concourse, registry, repo_name: str, tmp_path: Path
) -> None:
    source = {"repository": f"{registry.host}/{repo_name}", "insecure": True, "cache": True}
    assert put(concourse, source, tmp_path, "1.0.0", "cold").returncode == 0
    # Flip a byte in the middle of every layer blob the registry holds over 100 kB
    # (busybox's layer among them): the cache's copy no longer matches its digest.
    blobs = registry.root / "docker" / "registry" / "v2" / "blobs"
    for data in blobs.rglob("data"):
        if data.stat().st_size > 100_000:
            raw = bytearray(data.read_bytes())
            raw[len(raw) // 2] ^= 1
            data.write_bytes(bytes(raw))
    result = put(concourse, source, tmp_path, "1.0.1", "after")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STEP 2/4: COPY busybox" in result.stderr


def test_a_failed_build_publishes_nothing(
    concourse: Concourse, registry, repo_name: str, tmp_path: Path
) -> None:
    """The version is never made; the cache keeps the steps that succeeded (that is
    what makes the next attempt fast) and is never a version."""
    source = {"repository": f"{registry.host}/{repo_name}", "insecure": True, "cache": True}
    fresh_worker(concourse, tmp_path, "w")
    sources = tmp_path / "put"
    params = project(sources)
    (sources / "src" / "Dockerfile").write_text(DOCKERFILE + 'RUN ["/bin/busybox", "false"]\n')
    result = concourse.put(source, {**params, "version": "1.0.0"}, sources)
    assert result.returncode == 1
    assert tags(registry, repo_name) == []
    assert tags(registry, f"{repo_name}-cache")  # the steps that succeeded


def test_a_layout_store_builds_without_a_cache(concourse: Concourse, tmp_path: Path) -> None:
    source = {"repository": str(tmp_path / "store"), "cache": True}
    result = put(concourse, source, tmp_path, "1.0.0", "w")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "build cache: a local layout store keeps none" in result.stderr
