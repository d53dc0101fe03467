"""The build cache's parts: where it lives, the flags each builder gets (img's
against v0.5.11's exact CLI), and the wrapper that adds them to `build` only,
and builds again without the cache when the cache itself failed the build."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from builder_resource.building.buildah import Buildah
from builder_resource.building.cache import BuildCache, insecure_registries_conf, install_cache
from builder_resource.building.img import Img
from builder_resource.config import OutRequest, Source, parse_request
from builder_resource.errors import ConfigError

REF = "registry.example.org/team/app-cache"

FAKE_BUILDER = """#!/bin/sh
# Records its arguments; fails like buildah when asked to push a cache to a
# registry that is gone (FAIL_CACHE=1), or like a broken Dockerfile (FAIL=1).
echo "$*" >> "$CALLS"
case " $* " in
  *" --cache-to "*)
    if [ "${FAIL_CACHE:-}" = 1 ]; then
      echo "Error: failed pushing cache to x: connection refused" >&2
      exit 125
    fi ;;
esac
[ "${FAIL:-}" = 1 ] && { echo "Error: building at STEP 3: exit status 1" >&2; exit 1; }
exit 0
"""


def test_the_cache_lives_beside_the_versions() -> None:
    def repository(**source) -> str | None:
        return Source(repository="r.example.org/team/app", **source).cache_repository()

    assert repository() is None
    assert repository(cache=True) == "r.example.org/team/app-cache"
    assert (
        repository(cache={"repository": "r.example.org/caches/app"}) == "r.example.org/caches/app"
    )
    assert Source(repository="docker.io/org/app", cache=True).cache_repository() == (
        "docker.io/org/app-cache"  # Docker Hub: two levels, as the store's own
    )
    with pytest.raises(ConfigError, match="source.cache.repository: .*registry"):
        parse_request(
            OutRequest,
            {
                "source": {"repository": "/s", "cache": {"repository": "/x"}},
                "params": {"context": "."},
            },
        )


def test_each_builders_flags() -> None:
    assert Buildah().cache_flags(BuildCache(REF)) == [
        "--layers", "--cache-from", REF, "--cache-to", REF,
    ]  # fmt: skip
    assert Img().cache_flags(BuildCache(REF)) == [
        "--cache-from", REF, "--cache-to", f"type=registry,ref={REF},mode=max",
    ]  # fmt: skip
    assert Img().cache_flags(BuildCache(REF, insecure=True)) is None  # img: TLS only


def test_an_insecure_cache_registry_alone_is_declared_insecure(tmp_path: Path) -> None:
    assert insecure_registries_conf(tmp_path, BuildCache(REF)) == {}
    env = insecure_registries_conf(tmp_path, BuildCache("127.0.0.1:5000/a-cache", insecure=True))
    conf = Path(env["CONTAINERS_REGISTRIES_CONF"]).read_text()
    assert conf == '[[registry]]\nlocation = "127.0.0.1:5000"\ninsecure = true\n'


@pytest.fixture
def wrapped(tmp_path: Path):
    """``run(args, **env)``: the wrapper installed over a fake builder named buildah."""
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    fake = real_dir / "buildah"
    fake.write_text(FAKE_BUILDER)
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    env = install_cache(
        "buildah",
        "buildah",
        Buildah().cache_flags(BuildCache(REF)),
        BuildCache(REF),
        tmp_path / "bin",
        {"PATH": f"{real_dir}:/usr/bin:/bin"},
    )

    def run(args: list[str], **extra: str) -> tuple[int, list[str], str]:
        calls.unlink(missing_ok=True)
        done = subprocess.run(
            ["buildah", *args],
            env={**env, "CALLS": str(calls), **extra},
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, calls.read_text().splitlines(), done.stderr

    return run


def test_the_wrapper_adds_the_cache_to_build_only(wrapped) -> None:
    code, calls, _ = wrapped(["build", "-t", "x", "."])
    assert code == 0
    assert calls == [f"build --layers --cache-from {REF} --cache-to {REF} -t x ."]
    assert wrapped(["bud", "."])[1] == [f"bud --layers --cache-from {REF} --cache-to {REF} ."]
    assert wrapped(["push", "x", "docker-archive:/o.tar"])[1] == ["push x docker-archive:/o.tar"]
    assert wrapped(["--version"])[1] == ["--version"]


def test_a_cache_failure_is_one_warning_and_a_build_without_it(wrapped) -> None:
    code, calls, stderr = wrapped(["build", "-t", "x", "."], FAIL_CACHE="1")
    assert code == 0
    assert calls == [f"build --layers --cache-from {REF} --cache-to {REF} -t x .", "build -t x ."]
    warnings = [line for line in stderr.splitlines() if line.startswith("build cache: ")]
    assert warnings == [f"build cache: {REF} failed this build; building again without it"]


def test_a_failing_build_fails_once(wrapped) -> None:
    code, calls, stderr = wrapped(["build", "-t", "x", "."], FAIL="1")
    assert code == 1
    assert len(calls) == 1  # not built again: the cache was not the cause
    assert "build cache:" not in stderr


def test_a_builder_that_cannot_use_the_cache_is_left_alone(tmp_path: Path, caplog) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    with caplog.at_level(logging.WARNING):
        out = install_cache("img", "img", None, BuildCache(REF, insecure=True), tmp_path, env)
    assert out == env
    assert caplog.messages == [
        f"build cache: img cannot use {REF} (plain HTTP): building without it"
    ]
