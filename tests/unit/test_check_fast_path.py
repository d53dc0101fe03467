"""check's fast path, piece by piece: the request checks it makes instead of
pydantic, its cache, the light layout reader, URL and header helpers, and the
version choice it shares with the full path. Each piece either agrees with the
full path's own code or declines (Fallback/Unsure)."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from builder_resource import fastcheck
from builder_resource.check import select_versions
from builder_resource.config import CheckRequest, Version, parse_request
from builder_resource.errors import ConfigError, ImageError, StoreError
from builder_resource.fastcheck import Cache, Fallback, plain_version, source_material
from builder_resource.oci import media_types as mt
from builder_resource.store import light
from builder_resource.store.layout import LayoutStore
from builder_resource.store.light import LightLayout, Unsure

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


# -- one source of truth ------------------------------------------------------------


def test_shared_constants_match_their_owners() -> None:
    from builder_resource import certificates, config, versions
    from builder_resource.store import http, layout

    assert light.REF_NAME == layout.REF_NAME
    assert light.USER_AGENT == http.USER_AGENT
    assert (light.CONNECT_TIMEOUT, light.READ_TIMEOUT) == http.TIMEOUT
    assert fastcheck.LOCAL_CA_VARIABLE == certificates.LOCAL_CA_VARIABLE
    assert config.TAG == versions.TAG_PATTERN and config.DIGEST == versions.DIGEST_PATTERN
    assert set(CheckRequest.model_fields) == fastcheck.REQUEST_KEYS


def test_the_fast_path_imports_neither_pydantic_nor_requests() -> None:
    """In a fresh interpreter: what importing the fast path's modules, and ordering
    semantic versions, loads."""
    import subprocess

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import builder_resource.fastcheck, builder_resource.check, builder_resource.versions\n"
        "import builder_resource.store.light, builder_resource.store.wire\n"
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
    heavy_modules = ("pydantic", "requests", "urllib3", "ssl", "socket", "typing", "hashlib")
    for heavy in (*heavy_modules, "json", "re", "enum", "dataclasses"):
        assert heavy not in loaded, heavy
    assert "builder_resource.config" not in loaded


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
    assert settings["local"] is False and fastcheck._usable(settings)
    assert fastcheck.validated_settings({"source": {"repository": "/s"}})["local"] is True
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
        fastcheck.attempt(request_, {"TMPDIR": str(tmp_path)})


def test_the_switch_turns_the_fast_path_off(tmp_path: Path) -> None:
    request = json.dumps({"source": {"repository": str(tmp_path / "s")}})
    env = {"TMPDIR": str(tmp_path)}
    assert fastcheck.attempt(request, env)[0] == []
    with pytest.raises(Fallback):
        fastcheck.attempt(request, {**env, "BUILDER_RESOURCE_FAST_CHECK": "0"})


@pytest.mark.parametrize("pattern", ["TAG_PATTERN", "DIGEST_PATTERN"])
def test_pattern_checks_without_re_agree_with_the_patterns(pattern: str) -> None:
    import random
    import re

    from builder_resource import versions

    check = versions.is_tag if pattern == "TAG_PATTERN" else versions.is_digest
    regex = re.compile(getattr(versions, pattern))
    alphabet = "aA0_.-:/\n é" + "0123456789abcdef"
    rng = random.Random(6)
    samples = ["", "sha256:", DIGEST, DIGEST.upper(), "a" * 128, "a" * 129, "1.0\n", "_", "."]
    samples += ["sha256:" + "".join(rng.choice("0123456789abcdefg") for _ in range(64))]
    for _ in range(3000):
        prefix = rng.choice(["", "sha256:"])
        size = rng.choice([1, 2, 5, 63, 64, 65, 127, 128, 129])
        samples.append(prefix + "".join(rng.choice(alphabet) for _ in range(size)))
    for text in samples:
        assert check(text) == bool(regex.fullmatch(text)), repr(text)


JSON_SAMPLES = [
    '{"source": {"repository": "h:5000/a", "insecure": true}, "version": null}',
    ' [ {"tag": "1", "digest": "x"} ] ',
    '{"a": [1, 2.5, -0.0, 1e400, null, false, "\\u00e9\\ud800\\n"], "b": {}, "c": []}',
    '{"a": 1, "a": 2}',
    "[NaN, Infinity, -Infinity, 12345678901234567890]",
    '"just a string"',
]


@pytest.mark.parametrize("text", JSON_SAMPLES)
def test_json_on_the_c_accelerator_agrees_with_json(text: str) -> None:
    value = json.loads(text)
    assert repr(light.json_loads(text)) == repr(value)
    assert repr(light.json_loads(text.encode())) == repr(value)
    assert light.json_dumps(value) == json.dumps(value)
    compact = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert light.json_dumps(value, sort_keys=True, compact=True) == compact


@pytest.mark.parametrize(
    "text",
    ["", "  ", "[1,]", '{"a"}', "[] x", "\ufeff[]", "01", "[1] [2]", '"\x01"', "{'a': 1}"],
)
def test_json_that_json_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(Unsure):
        light.json_loads(text)


def test_json_bytes_in_other_encodings_are_declined() -> None:
    for data in (b"\xef\xbb\xbf[]", "[]".encode("utf-16"), "[1]".encode("utf-32-le"), b"[\xff]"):
        with pytest.raises(Unsure):
            light.json_loads(data)


def test_output_is_what_the_full_path_prints() -> None:
    versions = [{"tag": "1.0", "digest": DIGEST}, {"tag": "é\u2028", "digest": OTHER}]
    assert light.json_dumps(versions) == json.dumps(versions)
    assert light.json_dumps([]) == json.dumps([])


def test_a_netrc_is_unusual(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    light.unusual_environment({**home, "no_proxy": "*", "PATH": "/bin", "https_proxy": "x"})
    (tmp_path / "n").write_text("")
    with pytest.raises(Unsure, match="netrc"):
        light.unusual_environment({**home, "NETRC": str(tmp_path / "n")})
    (tmp_path / ".netrc").write_text("")
    with pytest.raises(Unsure, match="netrc"):
        light.unusual_environment(home)


HOSTS = [
    "registry.corp.example:5000",
    "registry.corp.example",
    "REGISTRY.corp.example",
    "127.0.0.1:5000",
    "127.1:80",
    "10.1.2.3",
    "[::1]:5000",
    "badexample.com:443",
]
NO_PROXY = [
    "*",
    "corp.example",
    ".corp.example",
    "registry.corp.example:5000",
    "127.0.0.1",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "10.1.2.3/33",
    "example.com",
    "::1",
    "Registry.corp.example",
    "127.1",
    "10.1/16",
    "x/y",
]


@pytest.mark.parametrize("host", HOSTS)
def test_the_light_client_goes_direct_only_where_requests_would(host: str) -> None:
    """requests' own ``should_bypass_proxies`` is the oracle: the light client may
    connect directly only where requests would bypass the proxy too."""
    from requests.utils import should_bypass_proxies

    assert not light.proxied({"HTTPS_PROXY": "", "PATH": "/bin"}, host)  # no proxy at all
    bypassed = 0
    for no_proxy in ["", *NO_PROXY, *(f"{a}, {b}" for a in NO_PROXY for b in NO_PROXY)]:
        env = {"https_proxy": "http://proxy:3128", "NO_PROXY": no_proxy}
        direct = not light.proxied(env, host)
        if direct:
            assert should_bypass_proxies(f"https://{host}/v2/", no_proxy=no_proxy), no_proxy
            bypassed += 1
    # it does go direct where no_proxy names the host (badexample.com: "*" alone)
    assert bypassed > (0 if host.startswith("bad") else 20)


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
    path = cache._path("source", "m")
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
    assert "source: validated" in fastcheck.attempt(request, env)[2]
    assert "source: cached" in fastcheck.attempt(request, env)[2]
    # A stale or foreign entry is validated again, not trusted.
    cache = Cache.for_env(env)
    material = source_material(json.loads(request)["source"])
    cache.store("source", material, {"format": -1})
    assert "source: validated" in fastcheck.attempt(request, env)[2]


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


# -- helpers of the light client ------------------------------------------------------


def test_split_netloc_and_url() -> None:
    assert light.split_netloc("127.0.0.1:5000", 80) == ("127.0.0.1", 5000)
    assert light.split_netloc("example.org", 443) == ("example.org", 443)
    assert light.split_netloc("[::1]:5000", 80) == ("::1", 5000)
    assert light.split_netloc("[::1]", 443) == ("::1", 443)
    for bad in (":5000", "h:x", "h:70000", "[::1]x"):
        with pytest.raises(Unsure):
            light.split_netloc(bad, 80)
    assert light.split_url("https://auth.example.org/token?x=1") == (
        "https",
        "auth.example.org",
        "/token?x=1",
    )
    assert light.split_url("HTTP://h:1") == ("http", "h:1", "/")
    for bad in ("ftp://h/x", "https://u:p@h/x", "https://h/x#f", "https://h/a b", "/rel"):
        with pytest.raises(Unsure):
            light.split_url(bad)


def test_form_encode_matches_urlencode() -> None:
    pairs = [
        ("service", "registry.example.org"),
        ("scope", "repository:team/app:pull"),
        ("scope", "repository:localhost:5000/a b:pull,push"),
        ("x", "é~-_.*'()!"),
    ]
    assert light.form_encode(pairs) == urlencode(pairs)


def test_basic_credentials_match_the_full_client() -> None:
    import requests

    from builder_resource.store.auth import Authenticator

    user, password = "builder", "pässwörd:1"
    registry_side = Authenticator("r", requests.Session(), verify=True, username=user)
    registry_side._password = password
    assert light.basic_credentials(user, password, "utf-8") == registry_side._basic()
    token_side = requests.auth._basic_auth_str(user, password)
    assert light.basic_credentials(user, password, "latin-1") == token_side
    assert base64.b64decode(token_side[6:]) == f"{user}:{password}".encode("latin-1")


# -- the light layout reader ------------------------------------------------------------


def layout_with(tmp_path: Path, index: object) -> Path:
    root = tmp_path / "layout"
    root.mkdir(exist_ok=True)
    text = index if isinstance(index, str) else json.dumps(index)
    (root / "index.json").write_text(text)
    return root


def entry(tag: str | None, digest: str = DIGEST, **extra: object) -> dict:
    item: dict = {"mediaType": mt.OCI_INDEX, "digest": digest, "size": 2, **extra}
    if tag is not None:
        item["annotations"] = {light.REF_NAME: tag}
    return item


def manifests(*items: object) -> dict:
    return {"schemaVersion": 2, "manifests": list(items)}


@pytest.mark.parametrize(
    "index",
    [
        manifests(entry("1.0"), entry("2.0", OTHER), entry(None)),
        manifests(entry("1.0"), entry("1.0", OTHER)),  # the later entry wins
        manifests(entry("1.0", annotations={})),
        manifests(entry("1.0", annotations=None)),
        manifests(entry("x", annotations={"other": "y"})),
        manifests(),
        manifests(entry("1.0", size="2")),
        manifests(entry("1.0", size=2.0)),
        manifests(entry("1.0", size=-1)),
        manifests(entry("1.0", digest="sha256:short")),
        manifests(entry("1.0", digest=DIGEST + "\n")),
        manifests({"digest": DIGEST, "size": 1}),
        manifests("not an object"),
        manifests(entry("1.0", annotations=[[light.REF_NAME, "1.0"]])),
        manifests(entry("1.0", annotations={light.REF_NAME: 7})),
        manifests(entry("1.0", annotations={light.REF_NAME: ""})),
        {"manifests": {}},
        [],
        "{not json",
        "",
    ],
)
def test_light_layout_agrees_with_layout_store_or_declines(tmp_path: Path, index: object) -> None:
    root = layout_with(tmp_path, index)
    try:
        store = LayoutStore(str(root))
        expected_tags = store.list_tags()
        expected = {t: store.resolve_tag(t) for t in expected_tags}
    except (StoreError, ImageError, TypeError, ValueError):
        expected_tags = None
    try:
        reader = LightLayout(str(root))
        tags = reader.list_tags()
        got = {t: reader.resolve_tag(t) for t in tags}
    except Unsure:
        return  # declining is always allowed
    assert expected_tags is not None, "the light reader accepted what LayoutStore refuses"
    assert tags == expected_tags and got == expected
    assert reader.resolve_tag("absent") is None


def test_light_layout_paths(tmp_path: Path) -> None:
    assert LightLayout(str(tmp_path / "none")).list_tags() == []
    root = layout_with(tmp_path, manifests(entry("1.0")))
    assert LightLayout("file://" + str(root)).list_tags() == ["1.0"]
    assert LightLayout(str(root) + "/").resolve_tag("1.0") == DIGEST
    with pytest.raises(Unsure):
        LightLayout("file://relative/dir")
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(Unsure):
        LightLayout(str(tmp_path / "plain-file")).list_tags()
