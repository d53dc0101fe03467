"""The process entry of ``opt/resource/check``: the common check, cheaply.

Concourse runs check every minute in a container it reuses, so a check should cost
little more than starting the interpreter. This path answers the ordinary case
without importing pydantic or requests; anything else goes to the full path
(``cli.main`` → ``check.run``), so answers and error messages stay those of the
full path, which is the contract:

- **Validation**: the pydantic models stay the only judge of a source. The first
  check of a source validates it with them and remembers the verdict in the
  container (:class:`Cache`, keyed by a hash of the source with its passwords
  blanked out); later checks of the same source skip pydantic. A version is
  checked against the same patterns the ``Version`` model uses. An invalid or
  unknown request always goes to the full path, which reports it.
- **Reads**: ``store/light.py`` lists tags and resolves digests over a minimal
  HTTP/1.1 client (or reads ``index.json``), remembering the registry's scheme and
  auth challenge, and Bearer tokens until they expire. Any surprise raises
  ``Unsure``: the cache entries of that registry are dropped and the full path
  runs from the start.
- **Choice**: :func:`check.select_versions` and :func:`versions.order_tags`, shared
  with the full path.

``BUILDER_RESOURCE_FAST_CHECK=0`` always takes the full path;
``BUILDER_RESOURCE_CHECK_TRACE=1`` writes one line to stderr saying which path ran.
"""

from __future__ import annotations

import os
import sys

from . import collector
from .store.light import Unsure, json_dumps, json_loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (check's path)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .store.light import LightLayout, LightRegistry

#: Bump when the meaning of a cache entry changes.
CACHE_FORMAT = 2
#: Source keys whose string values are secrets: blanked out before hashing.
SECRET_KEYS = ("password",)
BLANK = "\0secret"
#: certificates.LOCAL_CA_VARIABLE (a unit test keeps them equal).
LOCAL_CA_VARIABLE = "LOCAL_CA_CERTIFICATE"
#: Keys of a check request (``CheckRequest``'s fields).
REQUEST_KEYS = frozenset({"source", "version"})


class Fallback(Exception):
    """Take the full path."""


def main() -> None:
    """Read the request, answer it, exit. Stdout carries exactly one JSON value."""
    collector.pace()  # a first check, or the full path, imports pydantic
    text = sys.stdin.read()
    env = os.environ
    trace = env.get("BUILDER_RESOURCE_CHECK_TRACE") == "1"
    try:
        versions, notes, how = attempt(text, env)
    except Exception as e:  # noqa: BLE001 - whatever it was, the full path decides
        if trace:
            sys.stderr.write(f"check: full path ({type(e).__name__}: {e})\n")
        code = full_path(text, sys.argv[1:])
        collector.freeze_before_exit()
        sys.exit(code)
    for line in notes:
        sys.stderr.write(line + "\n")
    if trace:
        sys.stderr.write(f"check: fast path ({how})\n")
    sys.stdout.write(json_dumps(versions) + "\n")
    sys.stdout.flush()
    collector.freeze_before_exit()


def full_path(text: str, args: list[str]) -> int:
    """``cli.main`` on the same stdin: the reference behaviour, errors included."""
    import io

    from .cli import main as cli_main

    sys.stdin = io.StringIO(text)
    return cli_main(["check", *args])


def attempt(text: str, env: Mapping[str, str]) -> tuple[list[dict[str, str]], list[str], str]:
    """(versions, log lines, how) for the ordinary case; raises for anything else."""
    if env.get("BUILDER_RESOURCE_FAST_CHECK") == "0":
        raise Fallback("BUILDER_RESOURCE_FAST_CHECK=0")
    payload = json_loads(text)
    if not isinstance(payload, dict) or not REQUEST_KEYS.issuperset(payload):
        raise Fallback("request shape")
    source = payload.get("source")
    if not isinstance(source, dict):
        raise Fallback("source shape")
    if source.get("debug") is True:
        raise Fallback("debug")  # the full path logs and prints tracebacks
    cursor = plain_version(payload.get("version"))

    cache = Cache.for_env(env)
    material = source_material(source)
    settings = cache.load("source", material)
    how = ["source: cached"]
    if not _usable(settings):
        settings = validated_settings(payload)
        cache.store("source", material, settings)
        how = ["source: validated"]
    assert settings is not None
    username, password, ca_certs = _credentials(source)

    from .check import select_versions
    from .versions import order_tags

    trusted = trusted_pems(ca_certs, env, cache)
    store = _light_store(settings, username, password, trusted, env, cache)
    try:
        tags = order_tags(store.list_tags(), settings["tag_regex"])
        versions = select_versions(tags, cursor, store.resolve_tag)
    except BaseException:
        store.forget()
        raise
    finally:
        store.close()
    how += [f"{k}: {v}" for k, v in sorted(store.trace.items())]
    return versions, store.notes, ", ".join(how)


def _light_store(
    settings: dict[str, Any],
    username: str | None,
    password: str | None,
    ca_certs: list[str],
    env: Mapping[str, str],
    cache: Cache | None,
) -> LightRegistry | LightLayout:
    from .store.light import LightLayout, LightRegistry

    if settings["local"]:
        return LightLayout(settings["repository"])
    return LightRegistry(
        settings["repository"],
        username=username,
        password=password,
        insecure=settings["insecure"],
        ca_certs=ca_certs,
        env=env,
        memo=cache,
        parsed=(settings["registry"], settings["name"]),
    )


def trusted_pems(ca_certs: list[str], env: Mapping[str, str], cache: Cache) -> list[str]:
    """``certificates.trusted_certificates(ca_certs, env)``, remembered: its answer
    depends on nothing else, and computing it loads ``re`` and ``base64``. CA
    certificates are public; the entry holds them and nothing more."""
    local = env.get(LOCAL_CA_VARIABLE, "")
    if not ca_certs and not local.strip():
        return []
    material = f"{_stamp(('certificates.py',))}\n{json_dumps([ca_certs, local])}"
    remembered = cache.load("trust", material)
    pems = remembered.get("pems") if remembered else None
    if isinstance(pems, list) and all(type(p) is str for p in pems):
        return pems
    from .certificates import trusted_certificates

    pems = trusted_certificates(ca_certs, env)
    cache.store("trust", material, {"pems": pems})
    return pems


# -- the request ------------------------------------------------------------------------


def plain_version(value: Any) -> tuple[str, str] | None:
    """The cursor as (tag, digest), when ``value`` is absent or a version the
    ``Version`` model accepts as it is (the same patterns); else Fallback."""
    if value is None:
        return None
    from .versions import is_digest, is_tag

    if (
        type(value) is dict
        and value.keys() == {"tag", "digest"}
        and type(value["tag"]) is str
        and type(value["digest"]) is str
        and is_tag(value["tag"])
        and is_digest(value["digest"])
    ):
        return value["tag"], value["digest"]
    raise Fallback("version")


def validated_settings(payload: dict[str, Any]) -> dict[str, Any]:
    """Validate with the pydantic models (the contract); the non-secret settings
    check needs, as the models normalised them, and the registry's host and name
    as ``parse_repository`` reads them (a check need not load ``re`` again)."""
    from .config import CheckRequest, parse_request
    from .store.wire import parse_repository

    source = parse_request(CheckRequest, payload).source
    settings = {
        "format": CACHE_FORMAT,
        "repository": source.repository,
        "insecure": source.insecure,
        "tag_regex": source.tag_regex,
        "local": source.is_local,
    }
    if not source.is_local:
        settings["registry"], settings["name"] = parse_repository(source.repository)
    return settings


def _usable(settings: dict[str, Any] | None) -> bool:
    return (
        settings is not None
        and settings.get("format") == CACHE_FORMAT
        and isinstance(settings.get("repository"), str)
        and type(settings.get("insecure")) is bool
        and type(settings.get("local")) is bool
        and (settings.get("tag_regex") is None or isinstance(settings["tag_regex"], str))
        and (
            settings["local"]
            or (isinstance(settings.get("registry"), str) and isinstance(settings.get("name"), str))
        )
    )


def _credentials(source: dict[str, Any]) -> tuple[str | None, str | None, list[str]]:
    """Username, password and ca_certs as the validated model holds them: a valid
    source has them as plain strings (pydantic coerces nothing there)."""
    username, password = source.get("username"), source.get("password")
    ca_certs = source.get("ca_certs")
    ca_certs = [] if ca_certs is None else ca_certs
    if (
        not (username is None or type(username) is str)
        or not (password is None or type(password) is str)
        or type(ca_certs) is not list
        or not all(type(c) is str for c in ca_certs)
    ):
        raise Fallback("credentials shape")
    return username, password, ca_certs


def source_material(source: dict[str, Any]) -> str:
    """What identifies a source's verdict: its canonical JSON with every password
    blanked (any string is a valid password, so the verdict cannot depend on it and
    the key reveals nothing of it), and a stamp of the models that judged it."""
    blanked = dict(source)
    for key in SECRET_KEYS:
        if isinstance(blanked.get(key), str):
            blanked[key] = BLANK
    registries = blanked.get("registries")
    if isinstance(registries, list):
        blanked["registries"] = [_blank_password(r) for r in registries]
    canonical = json_dumps(blanked, sort_keys=True, compact=True)
    return f"{_stamp(JUDGES)}\n{canonical}"


def _blank_password(item: Any) -> Any:
    if isinstance(item, dict) and isinstance(item.get("password"), str):
        return {**item, "password": BLANK}
    return item


#: The code whose verdicts the cache keeps: the models, and ``parse_repository``.
JUDGES = ("config.py", "store/wire.py")


def _stamp(judges: tuple[str, ...]) -> str:
    """Changes whenever the judges' code does, so a verdict never outlives it."""
    from . import __version__

    here = os.path.dirname(__file__)
    stamp = [__version__]
    for name in judges:
        try:
            info = os.stat(os.path.join(here, name))
            stamp.append(f"{info.st_mtime_ns}:{info.st_size}")
        except OSError:
            stamp.append("?")
    return ":".join(stamp)


# -- the cache ---------------------------------------------------------------------------


class Cache:
    """Small JSON entries in a private directory of the (reused) check container:
    ``$TMPDIR/builder-resource-check-<uid>/``, mode 0700, entries 0600, each named
    by the sha256 of what it is about. It holds the non-secret settings of valid
    sources, registries' schemes and challenges, and Bearer tokens with their
    expiry; never a source or a password. A directory that is not ours or is open
    to others is not used; failing to write is never an error."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._ready: bool | None = None

    @classmethod
    def for_env(cls, env: Mapping[str, str]) -> Cache:
        base = env.get("TMPDIR") or "/tmp"
        return cls(os.path.join(base, f"builder-resource-check-{os.geteuid()}"))

    def load(self, kind: str, material: str) -> dict[str, Any] | None:
        if not self._usable(create=False):
            return None
        try:
            fd = os.open(self._path(kind, material), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or info.st_mode & 0o077 or info.st_size > 1 << 20:
                return None
            data = json_loads(os.read(fd, info.st_size + 1))
        except (OSError, Unsure):
            return None
        finally:
            os.close(fd)
        return data if isinstance(data, dict) else None

    def store(self, kind: str, material: str, value: dict[str, Any]) -> None:
        if not self._usable(create=True):
            return
        path = self._path(kind, material)
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                os.write(fd, json_dumps(value).encode())
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except OSError:
            _unlink(temporary)

    def drop(self, kind: str, material: str) -> None:
        if self._usable(create=False):
            _unlink(self._path(kind, material))

    def _path(self, kind: str, material: str) -> str:
        digest = _sha256(f"{CACHE_FORMAT}\n{kind}\n{material}".encode()).hexdigest()
        return os.path.join(self.directory, f"{kind}-{digest}.json")

    def _usable(self, create: bool) -> bool:
        if self._ready is None or (create and not self._ready):
            self._ready = self._check(create)
        return self._ready

    def _check(self, create: bool) -> bool:
        import stat

        try:
            info = os.lstat(self.directory)
        except FileNotFoundError:
            if not create:
                return False
            try:
                os.mkdir(self.directory, 0o700)
                info = os.lstat(self.directory)
            except OSError:
                return False
        except OSError:
            return False
        return (
            stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077
        )


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 - contextlib.suppress would cost an import here
        os.unlink(path)
    except OSError:
        pass


def _sha256(data: bytes) -> Any:
    """hashlib.sha256, from the builtin module when there is one: loading hashlib's
    OpenSSL binding costs milliseconds that check does not otherwise spend."""
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # Python 3.12+
        except ImportError:
            from hashlib import sha256
    return sha256(data)
