"""check's common case, cheaply: Concourse runs check every minute in a container
it reuses, so a check should cost little more than starting the interpreter.

:func:`answer` serves the ordinary request without importing pydantic or
requests; for anything else it raises, and ``cli`` runs the full path
(``check.run``), whose answers and error messages are the contract:

- **Validation**: the pydantic models stay the only judge of a source. The first
  check of a source validates it with them and remembers the verdict in the
  container (:class:`Cache`, keyed by a hash of the source with its passwords
  blanked out); later checks of the same source skip pydantic. A version is
  checked against the same patterns the ``Version`` model uses.
- **Reads**: the same store and registry client as the full path, on the lean
  transport (``store/stdlib_transport.py``), with the cache as its memo of the
  registry's scheme, auth challenge and Bearer tokens. Where the lean transport
  declines, the memo of that registry is dropped and the full path runs.
- **Choice**: :func:`check.select_versions` and :func:`versions.order_tags`, shared
  with the full path.

``BUILDER_RESOURCE_FAST_CHECK=0`` always takes the full path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from collections.abc import Mapping
from typing import Any

from .check import select_versions
from .oci.references import is_digest, is_tag
from .store import open_store
from .versions import order_tags

#: Bump when the meaning of a cache entry changes.
CACHE_FORMAT = 3
#: Source keys whose string values are secrets: blanked out before hashing.
SECRET_KEYS = ("password", "signing_key", "signing_key_password")
BLANK = "\0secret"
#: Keys of a check request (``CheckRequest``'s fields).
REQUEST_KEYS = frozenset({"source", "version"})


class Fallback(Exception):
    """Take the full path."""


def answer(text: str, env: Mapping[str, str]) -> tuple[list[dict[str, str]], list[str], str]:
    """(versions, log lines, how it went) for the ordinary case; raises for anything
    else. The log lines are what the full path would have logged."""
    if env.get("BUILDER_RESOURCE_FAST_CHECK") == "0":
        raise Fallback("BUILDER_RESOURCE_FAST_CHECK=0")
    try:
        payload = json.loads(text)
    except ValueError:
        raise Fallback("not JSON") from None
    if not isinstance(payload, dict) or not REQUEST_KEYS.issuperset(payload):
        raise Fallback("request shape")
    source = payload.get("source")
    if not isinstance(source, dict):
        raise Fallback("source shape")
    if source.get("debug") is True:
        raise Fallback("debug")  # the full path logs and prints tracebacks
    if source.get("verify_keys"):
        raise Fallback("verify_keys")  # each version's signature is verified there
    cursor = plain_version(payload.get("version"))

    cache = Cache.for_env(env)
    material = source_material(source)
    settings = cache.load("source", material)
    how = ["source: cached"]
    if not usable_settings(settings):
        settings = validated_settings(payload)
        cache.store("source", material, settings)
        how = ["source: validated"]
    assert settings is not None
    username, password, ca_certs = _credentials(source)

    with _captured_log() as lines:
        store = open_store(
            settings["repository"],
            username=username,
            password=password,
            insecure=settings["insecure"],
            ca_certs=ca_certs,
            env=env,
            lean=True,
            hand_over=False,
            memo=cache,
        )
        try:
            tags = order_tags(store.list_tags(), settings["tag_regex"])
            versions = select_versions(tags, cursor, store.resolve_tag)
        except BaseException:
            forget = getattr(store, "forget", None)
            if forget is not None:
                forget()
            raise
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
    how += [f"{kind}: {way}" for kind, way in sorted(cache.used.items()) if kind != "source"]
    return versions, lines, ", ".join(how)


class _captured_log:  # noqa: N801 - used as a context manager, like a function
    """The package's log lines, kept (not written) while the fast path runs: they
    are written only if it succeeds, so that a fallback does not log them twice."""

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        self.handler = logging.Handler(logging.INFO)
        self.handler.emit = lambda record: self.lines.append(record.getMessage())  # type: ignore[method-assign]
        self.logger = logging.getLogger("builder_resource")
        self.level = self.logger.level
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


# -- the request ------------------------------------------------------------------------


def plain_version(value: Any) -> tuple[str, str] | None:
    """The cursor as (tag, digest), when ``value`` is absent or a version the
    ``Version`` model accepts as it is (the same patterns); else Fallback."""
    if value is None:
        return None
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
    check needs, as the models normalised them."""
    from .config import CheckRequest, parse_request

    source = parse_request(CheckRequest, payload).source
    return {
        "format": CACHE_FORMAT,
        "repository": source.repository,
        "insecure": source.insecure,
        "tag_regex": source.tag_regex,
    }


def usable_settings(settings: dict[str, Any] | None) -> bool:
    """Whether a cache entry holds settings this version of the fast path reads."""
    return (
        settings is not None
        and settings.get("format") == CACHE_FORMAT
        and isinstance(settings.get("repository"), str)
        and type(settings.get("insecure")) is bool
        and (settings.get("tag_regex") is None or isinstance(settings["tag_regex"], str))
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
    canonical = json.dumps(blanked, sort_keys=True, separators=(",", ":"))
    return f"{_stamp(JUDGES)}\n{canonical}"


def _blank_password(item: Any) -> Any:
    if isinstance(item, dict) and isinstance(item.get("password"), str):
        return {**item, "password": BLANK}
    return item


#: The code whose verdicts the cache keeps: the models.
JUDGES = ("config.py",)


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
        #: What each kind of entry gave: "memo" (found) or "fetched" (stored anew).
        self.used: dict[str, str] = {}

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
            data = json.loads(os.read(fd, info.st_size + 1))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        if not isinstance(data, dict):
            return None
        self.used[kind] = "memo"
        return data

    def store(self, kind: str, material: str, value: dict[str, Any]) -> None:
        self.used[kind] = "fetched"
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
                os.write(fd, json.dumps(value).encode())
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except OSError:
            _unlink(temporary)

    def drop(self, kind: str, material: str) -> None:
        if self._usable(create=False):
            _unlink(self._path(kind, material))

    def _path(self, kind: str, material: str) -> str:
        digest = hashlib.sha256(f"{CACHE_FORMAT}\n{kind}\n{material}".encode()).hexdigest()
        return os.path.join(self.directory, f"{kind}-{digest}.json")

    def _usable(self, create: bool) -> bool:
        if self._ready is None or (create and not self._ready):
            self._ready = self._check(create)
        return self._ready

    def _check(self, create: bool) -> bool:
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
    with contextlib.suppress(OSError):
        os.unlink(path)
