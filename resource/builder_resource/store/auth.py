"""Registry authentication: Basic, and the Bearer-token flow of distribution's
token spec (docs/spec/auth/token.md).

The registry says which it wants in the ``WWW-Authenticate`` header of a 401. For
Basic the credentials go on every request. For Bearer a token is fetched from the
challenge's realm for the scopes a request needs, cached per scope set until it
expires (in the process, and in a :class:`Memo` when the caller keeps one across
processes, as check does), and fetched again when the registry answers 401 anyway
(expired early, revoked, or wider rights needed). The password never leaves this
module except in an Authorization header: it is in no message and no log line.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from ..errors import StoreError
from .transport import Response, read_body
from .wire import error_summary

log = logging.getLogger("builder_resource.store")

#: Token lifetime assumed when the server gives none, and the floor the spec sets.
MIN_TOKEN_SECONDS = 60
#: Renew a token this long before it expires, so a request never carries a stale one.
EXPIRY_MARGIN = 10


class Memo(Protocol):
    """What outlives a process (check's cache): small JSON objects by kind and key."""

    def load(self, kind: str, key: str) -> dict[str, Any] | None: ...
    def store(self, kind: str, key: str, value: dict[str, Any]) -> None: ...
    def drop(self, kind: str, key: str) -> None: ...


@dataclass
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: ``Bearer realm=...``."""

    scheme: str  # lower case: "basic" or "bearer" (others are kept but unused)
    params: dict[str, str] = field(default_factory=dict)


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"\s*({_TOKEN})(?=\s|$|,)")
# Unquoted values are read up to a comma or space: lenient about realms like
# ``realm=https://a/t`` that some servers send unquoted.
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge of a ``WWW-Authenticate`` value. Commas inside quoted values
    (``scope="repository:a:pull,push"``) stay where they belong."""
    out: list[Challenge] = []
    pos = 0
    header = header or ""
    while pos < len(header):
        while pos < len(header) and header[pos] in " ,":
            pos += 1
        scheme = _SCHEME.match(header, pos)
        if not scheme:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        # A token followed by a space and another token is the next scheme.
        while param := _PARAM.match(header, pos):
            value = param.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
            params[param.group(1).lower()] = value
            pos = param.end()
        out.append(Challenge(scheme.group(1).lower(), params))
    return out


def pick_challenge(header: str | None) -> Challenge | None:
    """The challenge a client answers: Bearer before Basic; None for others."""
    challenges = parse_challenges(header or "")
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def repository_scope(name: str, *actions: str) -> str:
    return f"repository:{name}:{','.join(actions)}"


def covers(granted: frozenset[str], wanted: frozenset[str]) -> bool:
    """Whether a token for the ``granted`` scopes serves a request needing ``wanted``.
    A name may hold ``host:port``, so the actions follow the last colon."""
    have: dict[str, set[str]] = {}
    for scope in granted:
        resource, _, actions = scope.rpartition(":")
        have.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    for scope in wanted:
        resource, _, actions = scope.rpartition(":")
        if not {a for a in actions.split(",") if a} <= have.get(resource, set()):
            return False
    return True


def basic_credentials(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


#: GET a URL (with these headers) with the client's retries, no auth of its own.
Fetch = Callable[[str, dict[str, str]], Response]


class Authenticator:
    """Produces the Authorization header for a request to one registry."""

    def __init__(
        self,
        registry: str,
        fetch: Fetch,
        *,
        username: str | None = None,
        password: str | None = None,
        memo: Memo | None = None,
    ) -> None:
        self.registry = registry
        self.challenge: Challenge | None = None
        self._fetch_url = fetch
        self._username = username or None
        self._password = password or ""
        self._memo = memo
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}  # scopes → token, expiry
        self._memo_keys: list[str] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Authenticator({self.registry!r}, username={self._username!r})"

    @property
    def scheme(self) -> str | None:
        return self.challenge.scheme if self.challenge else None

    def observe(self, response: Response) -> None:
        """Learn the registry's scheme from a 401 (the ping's, or any request's)."""
        challenge = pick_challenge(response.header("WWW-Authenticate"))
        if challenge is not None:
            self.challenge = challenge

    def authorization(self, scopes: frozenset[str]) -> str | None:
        """The Authorization header value for a request needing ``scopes``."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic" and self._username:
            return basic_credentials(self._username, self._password)
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scopes)
        return None

    def unauthorized(
        self, response: Response, scopes: frozenset[str], sent: str | None
    ) -> frozenset[str] | None:
        """A request got 401. Returns the scopes to try once more with (after dropping
        the cached token), or None when another try cannot help."""
        challenge = pick_challenge(response.header("WWW-Authenticate"))
        if challenge is None:
            return None
        self.challenge = challenge
        if challenge.scheme == "basic":
            # Worth a try only if credentials exist and were not sent.
            return scopes if self._username and not (sent or "").startswith("Basic ") else None
        if challenge.scheme != "bearer":
            return None
        asked = challenge.params.get("scope")
        wider = frozenset(scopes | (frozenset(asked.split(" ")) if asked else frozenset()))
        with self._lock:
            for key in [k for k in self._tokens if covers(k, scopes)]:
                del self._tokens[key]
            self.forget()
        return wider

    def forget(self) -> None:
        """Drop the tokens this authenticator left in the memo."""
        if self._memo is not None:
            for key in self._memo_keys:
                self._memo.drop("token", key)
        self._memo_keys.clear()

    def failure(self, status: str, what: str) -> StoreError:
        """The one-line error for a request (``what``) still refused (``status``)
        after fresh credentials."""
        where = f"registry {self.registry}"
        if not self._username:
            return StoreError(
                f"{where}: {what}: authentication required ({status}); set username and password"
            )
        if self.scheme == "bearer":
            return StoreError(
                f"{where}: {what}: access denied for user {self._username!r} ({status})"
            )
        return StoreError(f"{where}: authentication failed for user {self._username!r} ({status})")

    # -- Bearer tokens -------------------------------------------------------------

    def _token(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        with self._lock:
            now = time.monotonic()
            for key, (token, expiry) in list(self._tokens.items()):
                if expiry <= now:
                    del self._tokens[key]
                elif covers(key, scopes):
                    return token
            token, lifetime = self._remembered_or_fetched(challenge, scopes)
            self._tokens[scopes] = (token, now + max(lifetime - EXPIRY_MARGIN, 1))
            return token

    def _remembered_or_fetched(
        self, challenge: Challenge, scopes: frozenset[str]
    ) -> tuple[str, float]:
        """A token and its remaining lifetime; the memo's key holds the password, so
        that another password never gets this token (the memo stores keys hashed)."""
        realm, service = challenge.params.get("realm", ""), challenge.params.get("service", "")
        key = json.dumps(
            [self.registry, realm, service, sorted(scopes), self._username, self._password]
        )
        if self._memo is not None:
            remembered = self._memo.load("token", key) or {}
            token, expires = remembered.get("token"), remembered.get("expires")
            fresh = isinstance(expires, float | int) and expires - time.time() > EXPIRY_MARGIN
            if isinstance(token, str) and token and fresh:
                self._memo_keys.append(key)
                return token, expires - time.time()
        token, lifetime = self._fetch(realm, service, scopes)
        if self._memo is not None:
            self._memo.store("token", key, {"token": token, "expires": time.time() + lifetime})
            self._memo_keys.append(key)
        return token, lifetime

    def _fetch(self, realm: str, service: str, scopes: frozenset[str]) -> tuple[str, float]:
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise StoreError(f"registry {self.registry}: Bearer challenge without a usable realm")
        query = [("service", service)] if service else []
        query += [("scope", s) for s in sorted(scopes)]
        url = realm + (("&" if "?" in realm else "?") + urlencode(query) if query else "")
        headers = {}
        if self._username:
            headers["Authorization"] = basic_credentials(self._username, self._password)
        where = f"token server {urlsplit(realm).netloc}"
        response = self._fetch_url(url, headers)
        try:
            if response.status in (401, 403):
                if self._username:
                    raise StoreError(
                        f"registry {self.registry}: authentication failed for user "
                        f"{self._username!r} ({response.status} from {where})"
                    )
                raise StoreError(
                    f"registry {self.registry}: {where} refused anonymous access "
                    f"({response.status}); set username and password"
                )
            body = read_body(response, 1 << 20) or b""
        finally:
            response.close()
        if not 200 <= response.status < 400:
            raise StoreError(f"registry {self.registry}: {where}: {error_summary(response, body)}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token, data = None, {}
        if not isinstance(token, str) or not token:
            raise StoreError(f"registry {self.registry}: {where} answered without a token")
        try:
            lifetime = max(float(data.get("expires_in") or MIN_TOKEN_SECONDS), MIN_TOKEN_SECONDS)
        except (TypeError, ValueError):
            lifetime = MIN_TOKEN_SECONDS
        log.debug(
            "registry %s: token for %s (%d s)", self.registry, " ".join(sorted(scopes)), lifetime
        )
        return token, lifetime
