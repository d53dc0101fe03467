"""The transport on requests: blob transfers, and everything the lean transport
declines. One session per store, its connection pool sized for parallel transfers.
"""

from __future__ import annotations

import io
import re
import warnings

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .transport import TIMEOUT, USER_AGENT, Body, TransportError

#: Enough connections for a small pool of transfer threads plus the token fetcher.
POOL_SIZE = 8

_READ_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)


class RequestsResponse:
    """A streamed answer, or with ``buffered`` one read whole at once (which frees
    its connection at once)."""

    def __init__(self, response: requests.Response, buffered: bool) -> None:
        self._response = response
        self.status = response.status_code
        self.reason = response.reason or ""
        self.url = response.url
        self._buffer: io.BytesIO | None = None
        if buffered:
            self._buffer = io.BytesIO(self._read_all())

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    def read(self, size: int) -> bytes:
        if self._buffer is not None:
            return self._buffer.read(size)
        try:
            return self._response.raw.read(size, decode_content=True)
        except _READ_ERRORS as e:
            raise TransportError(describe_exception(e), transient=True) from None

    def _read_all(self) -> bytes:
        try:
            return self._response.content
        except _READ_ERRORS as e:
            self._response.close()
            raise TransportError(describe_exception(e), transient=True) from None

    def close(self) -> None:
        self._response.close()


class RequestsTransport:
    def __init__(self, verify: str | bool) -> None:
        """``verify``: False (``insecure``), a CA bundle's path, or True. It is passed
        on every request, since requests lets ``REQUESTS_CA_BUNDLE`` override a
        session's own."""
        self._verify = verify
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        if verify is False:
            # The user asked for it; one warning per request would drown the log.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body = None,
        *,
        follow_redirects: bool = False,
        stream: bool = False,
    ) -> RequestsResponse:
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                data=body,
                stream=True,
                allow_redirects=follow_redirects,
                verify=self._verify,
                timeout=TIMEOUT,
            )
        except requests.RequestException as e:
            untrusted = isinstance(e, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY" in str(
                e
            )
            raise TransportError(
                describe_exception(e), transient=_transient(e), untrusted=untrusted
            ) from None
        return RequestsResponse(response, buffered=not stream)

    def close(self) -> None:
        self._session.close()


def _transient(error: requests.RequestException) -> bool:
    """Resets, refused or dropped connections, timeouts, a body cut short; never a
    TLS failure (``SSLError`` is a ``ConnectionError`` too)."""
    return isinstance(
        error,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ),
    ) and not isinstance(error, requests.exceptions.SSLError)


_CONNECTION_PREFIX = re.compile(r"^(?:<[^>]*>|HTTPS?Connection\([^)]*\)): ")


def describe_exception(error: BaseException) -> str:
    """A short one-line reason for a connection-level failure, without the nested
    repr chains urllib3 builds."""
    reason: BaseException = error
    seen = set()
    while True:
        nxt = None
        if reason.args and isinstance(reason.args[0], BaseException):
            nxt = reason.args[0]
        elif isinstance(getattr(reason, "reason", None), BaseException):
            nxt = reason.reason  # type: ignore[attr-defined]
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        reason = nxt
    text = str(reason).strip() or type(reason).__name__
    text = " ".join(text.split())
    text = _CONNECTION_PREFIX.sub("", text)  # the host is in the caller's message already
    return text[:300]
