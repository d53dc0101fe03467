"""Registry authentication: Basic, and the Bearer-token flow of distribution's
token spec (docs/spec/auth/token.md).

The registry says which it wants in the ``WWW-Authenticate`` header of a 401. For
Basic the credentials go on every request. For Bearer a token is fetched from the
challenge's realm for the scopes a request needs, cached per scope set until it
expires, and fetched again when the registry answers 401 anyway (expired early,
revoked, or wider rights needed). The password never leaves this module except in
the Authorization header: it is in no message and no log line.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from urllib.parse import urlsplit

import requests

from ..errors import StoreError
from .http import (
    TIMEOUT,
    RetryPolicy,
    describe_exception,
    error_summary,
    is_transient,
    is_transient_error,
)
from .wire import (  # the pure pieces, shared with check's light client
    EXPIRY_MARGIN,
    MIN_TOKEN_SECONDS,
    Challenge,
    parse_challenges,
    pick_challenge,
    repository_scope,  # noqa: F401 (re-exported)
)

log = logging.getLogger("builder_resource.store")


def _split_scope(scope: str) -> tuple[str, frozenset[str]]:
    """(``type:name``, actions). A name may hold ``host:port``, so the actions are
    what follows the last colon."""
    resource, _, actions = scope.rpartition(":")
    return resource, frozenset(a for a in actions.split(",") if a)


def _covers(granted: frozenset[str], wanted: frozenset[str]) -> bool:
    have: dict[str, set[str]] = {}
    for scope in granted:
        resource, actions = _split_scope(scope)
        have.setdefault(resource, set()).update(actions)
    for scope in wanted:
        resource, actions = _split_scope(scope)
        if not actions <= have.get(resource, set()):
            return False
    return True


class Authenticator:
    """Produces the Authorization header for a request to one registry."""

    def __init__(
        self,
        registry: str,
        session: requests.Session,
        *,
        verify: str | bool,
        username: str | None = None,
        password: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.registry = registry
        self._session = session
        self._verify = verify
        self._username = username or None
        self._password = password or ""
        self._policy = policy or RetryPolicy()
        self._challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        #: How many tokens were fetched: the cache's effect, visible to tests and logs.
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"Authenticator({self.registry!r}, username={self._username!r})"

    @property
    def scheme(self) -> str | None:
        return self._challenge.scheme if self._challenge else None

    def observe(self, response: requests.Response) -> None:
        """Learn the registry's scheme from a 401 (the ping's, or any request's)."""
        challenge = self._pick(response)
        if challenge is not None:
            self._challenge = challenge

    def authorization(self, scopes: frozenset[str]) -> str | None:
        """The Authorization header value for a request needing ``scopes``."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic() if self._username else None
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scopes)
        return None

    def unauthorized(
        self, response: requests.Response, scopes: frozenset[str], sent: str | None
    ) -> frozenset[str] | None:
        """A request got 401. Returns the scopes to try once more with (after dropping
        the cached token), or None when another try cannot help."""
        challenge = self._pick(response)
        if challenge is None:
            return None
        self._challenge = challenge
        if challenge.scheme == "basic":
            # Worth a try only if credentials exist and were not sent.
            return scopes if self._username and not (sent or "").startswith("Basic ") else None
        if challenge.scheme != "bearer":
            return None
        asked = challenge.params.get("scope")
        wider = frozenset(scopes | (frozenset(asked.split(" ")) if asked else frozenset()))
        with self._lock:
            for key in [k for k in self._tokens if _covers(k, scopes)]:
                del self._tokens[key]
        return wider

    def failure(self, response: requests.Response, what: str) -> StoreError:
        """The one-line error for a request still refused after fresh credentials."""
        status = error_summary(response, detail=False)
        if not self._username:
            return StoreError(
                f"registry {self.registry}: {what}: authentication required ({status}); "
                "set username and password"
            )
        if self.scheme == "bearer":
            return StoreError(
                f"registry {self.registry}: {what}: access denied for user "
                f"{self._username!r} ({status})"
            )
        return StoreError(
            f"registry {self.registry}: authentication failed for user {self._username!r} "
            f"({status})"
        )

    # -- internals ---------------------------------------------------------------

    def _pick(self, response: requests.Response) -> Challenge | None:
        return pick_challenge(parse_challenges(response.headers.get("WWW-Authenticate", "")))

    def _basic(self) -> str:
        raw = f"{self._username}:{self._password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _token(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        with self._lock:
            now = time.monotonic()
            for key, (token, expiry) in list(self._tokens.items()):
                if expiry <= now:
                    del self._tokens[key]
                elif _covers(key, scopes):
                    return token
            token, lifetime = self._fetch(challenge, scopes)
            self._tokens[scopes] = (token, now + max(lifetime - EXPIRY_MARGIN, 1))
            return token

    def _fetch(self, challenge: Challenge, scopes: frozenset[str]) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise StoreError(f"registry {self.registry}: Bearer challenge without a usable realm")
        query = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query += [("scope", s) for s in sorted(scopes)]
        auth = (self._username, self._password) if self._username else None
        where = f"token server {urlsplit(realm).netloc}"
        attempt = 0
        while True:
            self.token_requests += 1
            try:
                response = self._session.get(
                    realm, params=query, auth=auth, verify=self._verify, timeout=TIMEOUT
                )
            except requests.RequestException as e:
                if is_transient_error(e) and attempt + 1 < self._policy.tries:
                    self._policy.wait(attempt)
                    attempt += 1
                    continue
                raise StoreError(
                    f"registry {self.registry}: {where}: {describe_exception(e)}"
                ) from None
            if is_transient(response) and attempt + 1 < self._policy.tries:
                self._policy.wait(attempt, response)
                attempt += 1
                continue
            break
        if response.status_code in (401, 403):
            if self._username:
                raise StoreError(
                    f"registry {self.registry}: authentication failed for user "
                    f"{self._username!r} ({response.status_code} from {where})"
                )
            raise StoreError(
                f"registry {self.registry}: {where} refused anonymous access "
                f"({response.status_code}); set username and password"
            )
        if not response.ok:
            raise StoreError(f"registry {self.registry}: {where}: {error_summary(response)}")
        try:
            data = response.json()
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
