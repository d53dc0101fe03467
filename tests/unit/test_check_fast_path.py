"""check's fast path, piece by piece: the request checks it makes instead of
pydantic, its cache, what its process imports, and the version choice it shares
with the full path. Each piece either agrees with the full path's own code or
declines (Fallback)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from builder_resource import fastcheck
from builder_resource.check import select_versions
from builder_resource.config import CheckRequest, Version, parse_request
from builder_resource.errors import ConfigError
from builder_resource.fastcheck import Cache, Fallback, plain_version, source_material

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def test_the_request_keys_are_the_models() -> None:
    assert set(CheckRequest.model_fields) == fastcheck.REQUEST_KEYS


def test_the_fast_path_imports_neither_pydantic_nor_requests() -> None:
    """In a fresh interpreter: what importing the fast path's modules, and ordering
    semantic versions, loads."""
    import subprocess

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import builder_resource.cli, builder_resource.fastcheck\n"
        "import builder_resource.store.registry, builder_resource.store.stdlib_transport\n"
        "builder_resource.versions.order_tags(['1.0.1-rc.1', 'v2.0.0+b', '1.0.0'])\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    root = Path(__file__).resolve().parents[2] / "resource"
    loaded = subprocess.run(
        [sys.executable, "-S", "-P", "-c", code],  # -S: no site hooks of this machine
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    ).stdout.split()
    for heavy in ("pydantic", "requests", "urllib3", "builder_resource.config"):
        assert heavy not in loaded, heavy


# -- the request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    [
        {"tag": "1.0.0", "digest": DIGEST},
        {"tag": "_x", "digest": DIGEST},
        {"tag": "a" * 128, "digest": DIGEST},
        {"tag": "1.0.0\n", "digest": DIGEST},
        {"tag": "1.0.0", "digest": DIGEST + "\n"},
        {"tag": "-x", "digest": DIGEST},
        {"tag": "a" * 129, "digest": DIGEST},
        {"tag": "1", "digest": "sha256:" + "A" * 64},
        {"tag": "1", "digest": DIGEST, "extra": "x"},
        {"tag": "1"},
        {"tag": 1, "digest": DIGEST},
        {},
        [],
        "1.0.0",
    ],
)
def test_a_version_is_accepted_only_as_the_model_accepts_it(version: object) -> None:
    try:
        expected = Version.model_validate(version)
    except Exception:  # noqa: BLE001 - pydantic refuses it: the fast path must too
        with pytest.raises(Fallback):
            plain_version(version)
        return
    try:
        fast = plain_version(version)
    except Fallback:
        return  # declining is always allowed
    assert fast == (expected.tag, expected.digest)


def test_absent_or_null_version_is_no_cursor() -> None:
    assert plain_version(None) is None


def test_the_source_key_blanks_passwords_and_nothing_else() -> None:
    base = {"repository": "r/x", "username": "u", "password": "one"}
    assert source_material(base) == source_material({**base, "password": "two"})
    assert "one" not in source_material(base)
    assert source_material(base) != source_material({**base, "username": "v"})
    assert source_material(base) != source_material({**base, "password": None})
    assert source_material(base) != source_material({**base, "password": 1})
    registries = [{"host": "h", "username": "u", "password": "p1"}]
    assert source_material({**base, "registries": registries}) == source_material(
        {**base, "registries": [{**registries[0], "password": "p2"}]}
    )
    # Key order does not matter; the source itself is left as it was.
    assert source_material({"b": 1, "a": 2}) == source_material({"a": 2, "b": 1})
    assert base["password"] == "one"


def test_validated_settings_are_the_models_values() -> None:
    payload = {"source": {"repository": "h:5000/a", "insecure": "true", "tag_regex": "^1"}}
    settings = fastcheck.validated_settings(payload)
    source = parse_request(CheckRequest, payload).source
    assert settings["insecure"] is True is source.insecure  # pydantic coerced it
    assert settings["repository"] == source.repository
    assert settings["tag_regex"] == source.tag_regex
    assert fastcheck.usable_settings(settings)
    with pytest.raises(ConfigError, match="repositry: unknown key"):
        fastcheck.validated_settings({"source": {"repositry": "/s"}})


@pytest.mark.parametrize(
    "request_",
    [
        "not json",
        "[]",
        json.dumps({"source": None}),
        json.dumps({"source": {"repository": "/s", "debug": True}}),
        json.dumps({"source": {"repository": "/s"}, "params": {}}),
        json.dumps({"source": {"repository": "/s"}, "version": {"tag": "1"}}),
    ],
)
def test_unusual_requests_take_the_full_path(request_: str, tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any exception means: the full path
        fastcheck.answer(request_, {"TMPDIR": str(tmp_path)})


def test_the_switch_turns_the_fast_path_off(tmp_path: Path) -> None:
    request = json.dumps({"source": {"repository": str(tmp_path / "s")}})
    env = {"TMPDIR": str(tmp_path)}
    assert fastcheck.answer(request, env)[0] == []
    with pytest.raises(Fallback):
        fastcheck.answer(request, {**env, "BUILDER_RESOURCE_FAST_CHECK": "0"})


# -- the cache --------------------------------------------------------------------------


def test_cache_round_trip_and_modes(tmp_path: Path) -> None:
    cache = Cache.for_env({"TMPDIR": str(tmp_path)})
    assert cache.directory == str(tmp_path / f"builder-resource-check-{os.geteuid()}")
    assert cache.load("source", "m") is None
    cache.store("source", "m", {"a": 1})
    assert cache.load("source", "m") == {"a": 1}
    assert cache.load("source", "other") is None
    assert cache.load("token", "m") is None  # kinds do not mix
    directory = Path(cache.directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (entry,) = directory.iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert "m" not in entry.name and entry.name.startswith("source-")
    cache.drop("source", "m")
    assert cache.load("source", "m") is None and not list(directory.iterdir())


def test_a_cache_directory_open_to_others_is_not_used(tmp_path: Path) -> None:
    cache = Cache.for_env({"TMPDIR": str(tmp_path)})
    cache.store("source", "m", {"a": 1})
    os.chmod(cache.directory, 0o755)
    again = Cache.for_env({"TMPDIR": str(tmp_path)})
    assert again.load("source", "m") is None
    again.store("source", "n", {"b": 2})
    assert len(os.listdir(cache.directory)) == 1  # nothing written either


def test_a_symlinked_cache_directory_is_not_used(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "t").mkdir()
    os.symlink(real, tmp_path / "t" / f"builder-resource-check-{os.geteuid()}")
    cache = Cache.for_env({"TMPDIR": str(tmp_path / "t")})
    cache.store("source", "m", {"a": 1})
    assert cache.load("source", "m") is None and not list(real.iterdir())


def test_entries_open_to_others_or_not_json_are_ignored(tmp_path: Path) -> None:
    cache = Cache.for_env({"TMPDIR": str(tmp_path)})
    cache.store("source", "m", {"a": 1})
    [path] = Path(cache.directory).glob("source-*.json")
    os.chmod(path, 0o644)
    assert Cache.for_env({"TMPDIR": str(tmp_path)}).load("source", "m") is None
    os.chmod(path, 0o600)
    Path(path).write_text("{not json")
    assert Cache.for_env({"TMPDIR": str(tmp_path)}).load("source", "m") is None


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = Cache.for_env({"TMPDIR": str(blocker)})
    cache.store("source", "m", {"a": 1})
    assert cache.load("source", "m") is None
    cache.drop("source", "m")
    # The same for a path that is a file where the directory should be.
    taken = tmp_path / "t"
    taken.mkdir()
    (taken / f"builder-resource-check-{os.geteuid()}").write_text("x")
    cache = Cache.for_env({"TMPDIR": str(taken)})
    cache.store("source", "m", {"a": 1})
    assert cache.load("source", "m") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_cache_directory_is_no_error(tmp_path: Path) -> None:
    cache = Cache.for_env({"TMPDIR": str(tmp_path)})
    cache.store("source", "m", {"a": 1})
    os.chmod(cache.directory, 0o500)
    try:
        cache.store("source", "n", {"b": 2})
        assert cache.load("source", "n") is None and cache.load("source", "m") == {"a": 1}
    finally:
        os.chmod(cache.directory, 0o700)


def test_the_source_cache_is_used_on_the_second_check(tmp_path: Path) -> None:
    request = json.dumps({"source": {"repository": str(tmp_path / "s")}})
    env = {"TMPDIR": str(tmp_path)}
    assert "source: validated" in fastcheck.answer(request, env)[2]
    assert "source: cached" in fastcheck.answer(request, env)[2]
    # A stale or foreign entry is validated again, not trusted.
    cache = Cache.for_env(env)
    material = source_material(json.loads(request)["source"])
    cache.store("source", material, {"format": -1})
    assert "source: validated" in fastcheck.answer(request, env)[2]


# -- choosing versions --------------------------------------------------------------


def test_select_versions() -> None:
    digests = {"1": "d1", "2": "d2", "3": "d3"}
    resolve = digests.get
    tags = ["1", "2", "3"]
    assert select_versions([], None, resolve) == []
    assert select_versions(tags, None, resolve) == [{"tag": "3", "digest": "d3"}]
    assert select_versions(tags, ("2", "d2"), resolve) == [
        {"tag": "2", "digest": "d2"},
        {"tag": "3", "digest": "d3"},
    ]
    assert select_versions(tags, ("2", "moved"), resolve) == [{"tag": "3", "digest": "d3"}]
    assert select_versions(tags, ("9", "d9"), resolve) == [{"tag": "3", "digest": "d3"}]
    # A tag gone between the listing and its HEAD is skipped.
    assert select_versions([*tags, "4"], ("2", "d2"), resolve) == [
        {"tag": "2", "digest": "d2"},
        {"tag": "3", "digest": "d3"},
    ]
    assert select_versions(["4", "5"], None, resolve) == []
