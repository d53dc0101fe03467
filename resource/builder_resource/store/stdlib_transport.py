"""The lean transport: ``http.client`` and ``ssl``, for the small requests of a
check and of a put whose blobs the registry already has (pings, tag lists, HEADs,
manifests, small uploads, tokens). Importing requests costs more than such a check.

It does what requests would do, or declines (:class:`~.transport.Unsure`) and the
client hands over to requests: for streamed uploads, answers over 16 MiB, redirects,
encoded bodies, a proxy that requests would use, a ``.netrc`` (requests would send its
credentials),
a certificate that does not verify, and any connection failure (requests retries
and words the error).
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..certificates import Trust
from .transport import TIMEOUT, USER_AGENT, Body, Unsure, Untrusted

#: The largest body read whole; registries' answers to these requests are small.
MAX_BODY = 16 << 20


def unusual_environment(env: Mapping[str, str], trust: Trust) -> str | None:
    """Why requests might not behave as this transport does in ``env``, judged once
    per process: a ``.netrc``, or a CA bundle requests would take from the
    environment (which it does only for ``trust.public_only``: not for an insecure
    registry, nor one whose CAs are given). Proxies are judged per host, by
    requests itself."""
    home = env.get("HOME") or os.path.expanduser("~")
    for path in (env.get("NETRC"), f"{home}/.netrc", f"{home}/_netrc"):
        if path and os.path.exists(path):
            return "a netrc file"
    if trust.public_only and (env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")):
        return "a CA bundle from the environment"
    return None


def proxied(url: str, env: Mapping[str, str]) -> bool:
    """Whether a proxy of the environment may be in the way to ``url``: yes where
    any proxy variable is set, unless ``no_proxy`` names the host as requests reads
    it (requests itself is asked, and imported, only then)."""
    if not any(
        value and name.lower().endswith("_proxy") and name.lower() != "no_proxy"
        for name, value in env.items()
    ):
        return False
    from requests.utils import should_bypass_proxies

    return not should_bypass_proxies(url, no_proxy=None)


class StdlibResponse:
    """An answer read whole (they are small): the body is served from memory."""

    def __init__(self, url: str, answer: http.client.HTTPResponse, body: bytes) -> None:
        self.url = url
        self.status = answer.status
        self.reason = answer.reason
        self._headers: dict[str, str] = {}
        for name, value in answer.getheaders():
            key = name.lower()
            known = self._headers.get(key)
            self._headers[key] = value if known is None else f"{known}, {value}"
        self._body = memoryview(body)

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def read(self, size: int) -> bytes:
        piece, self._body = self._body[:size], self._body[size:]
        return bytes(piece)

    def close(self) -> None:
        self._body = memoryview(b"")


class StdlibTransport:
    """One keep-alive connection per origin; one request at a time (put's threads
    share it)."""

    def __init__(self, trust: Trust, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        reason = unusual_environment(self._env, trust)
        if reason:
            raise Unsure(reason)
        self._trust = trust
        self._context: ssl.SSLContext | None = None
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body = None,
        *,
        follow_redirects: bool = False,
        stream: bool = False,
    ) -> StdlibResponse:
        # A streamed answer is read whole like any other: up to MAX_BODY (a manifest's
        # limit too), beyond which the request is declined. A streamed upload is not.
        if not (body is None or isinstance(body, bytes)):
            raise Unsure("a streamed body")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.username or parts.fragment:
            raise Unsure(f"URL {url}")
        if proxied(url, self._env):
            raise Unsure(f"a proxy may be in the way to {parts.netloc}")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"}
        sent.update(headers)
        with self._lock:
            answer, content = self._exchange(parts.scheme, parts.netloc, method, target, sent, body)
        if follow_redirects and 300 <= answer.status < 400:
            raise Unsure(f"a redirect ({answer.status})")
        if answer.getheader("Content-Encoding", "identity").lower() != "identity":
            raise Unsure("an encoded body")
        return StdlibResponse(url, answer, content)

    def close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()

    def _exchange(
        self, scheme: str, netloc: str, method: str, target: str, headers: dict, body: Body
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = self._connection(scheme, netloc)
        try:
            connection.request(method, target, body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read(MAX_BODY + 1)
        except ssl.SSLCertVerificationError as e:
            self._drop(scheme, netloc)
            raise Untrusted(str(e)) from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            self._drop(scheme, netloc)
            raise Unsure(f"connection: {type(e).__name__}: {e}") from None
        if len(content) > MAX_BODY:
            self._drop(scheme, netloc)
            raise Unsure("a large body")
        if answer.will_close:
            self._drop(scheme, netloc)
        return answer, content

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        connection = self._connections.get((scheme, netloc))
        if connection is None:
            timeout = TIMEOUT[0]
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    netloc, timeout=timeout, context=self._tls_context()
                )
            else:
                connection = http.client.HTTPConnection(netloc, timeout=timeout)
            self._connections[(scheme, netloc)] = connection
        return connection

    def _drop(self, scheme: str, netloc: str) -> None:
        connection = self._connections.pop((scheme, netloc), None)
        if connection is not None:
            connection.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self._trust.ssl_context()
        return self._context
