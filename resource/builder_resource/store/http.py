"""HTTP plumbing shared by the registry client and its token fetcher: the session
(trust, connection pool), the retry policy for transient failures, and turning a
registry's error answer into one readable line.

Retries follow what containers/image does: connection errors, 5xx and 429 are
retried a bounded number of times with a doubling backoff, and a ``Retry-After``
(seconds or an HTTP-date) is honoured up to a cap.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .tls import ca_bundle_file

log = logging.getLogger("builder_resource.store")

#: (connect, read) seconds. The read timeout also covers the registry's reply to
#: a large PUT, which it sends only once it has moved the blob into place.
TIMEOUT = (30.0, 300.0)
#: Enough connections for a small pool of transfer threads plus the token fetcher.
POOL_SIZE = 8
USER_AGENT = "concourse-builder-img"

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    ``tries`` counts every attempt, the first included. ``sleep`` is injectable so
    that tests need not wait."""

    tries: int = 5
    backoff: float = 0.5
    cap: float = 30.0
    #: The longest ``Retry-After`` obeyed; a registry asking for more gets this.
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, response: requests.Response | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 0)."""
        if response is not None:
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            if asked is not None:
                return min(asked, self.max_retry_after)
        return min(self.backoff * (2**attempt), self.cap)

    def wait(self, attempt: int, response: requests.Response | None = None) -> float:
        seconds = self.delay(attempt, response)
        if seconds > 0:
            self.sleep(seconds)
        return seconds


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for: delta-seconds or an HTTP-date.
    None when absent or unreadable (the caller then uses its own backoff)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def is_transient(response: requests.Response) -> bool:
    return response.status_code in TRANSIENT_STATUS


#: Exceptions worth another try: resets, refused or dropped connections, timeouts,
#: a body cut short. Certificate failures are ``SSLError``, a subclass of
#: ``ConnectionError`` that is never transient.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def is_transient_error(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT_ERRORS) and not isinstance(
        error, requests.exceptions.SSLError
    )


def make_session(
    *, insecure: bool = False, ca_certs: Sequence[str] = (), pool_size: int = POOL_SIZE
) -> tuple[requests.Session, str | bool]:
    """A session with a connection pool sized for parallel transfers, and the
    ``verify`` value every request must pass explicitly (requests lets the
    ``REQUESTS_CA_BUNDLE`` environment variable override a session's own)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    verify: str | bool
    if insecure:
        verify = False
        # The user asked for it; one warning per request would drown the log.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    elif ca_certs:
        verify = ca_bundle_file(ca_certs)
    else:
        verify = True
    return session, verify


def error_summary(response: requests.Response, limit: int = 300, detail: bool = True) -> str:
    """``<status> <CODE>: <message> (<detail>)`` from a registry answer. The body
    "MAY be in any format": JSON ``{"errors": [...]}`` is read when present,
    otherwise the first line of text is quoted; nothing here ever fails. ``detail``
    off drops the ``detail`` members (for a 401 they only list the scopes)."""
    parts = [str(response.status_code)]
    text = ""
    try:
        body = response.content[:65536]
    except Exception:  # a broken body must not hide the status
        body = b""
    described = _describe_errors(body, detail)
    if described:
        text = described
    elif body:
        first = body.decode("utf-8", "replace").strip().splitlines()
        text = first[0].strip() if first else ""
    elif response.reason:
        text = response.reason
    if text:
        parts.append(text)
    line = " ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _describe_errors(body: bytes, with_detail: bool = True) -> str:
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    out = []
    for item in errors[:3]:
        if not isinstance(item, dict):
            continue
        code = str(item.get("code") or "").strip()
        message = str(item.get("message") or "").strip()
        detail = item.get("detail")
        piece = ": ".join(p for p in (code, message) if p)
        if with_detail and detail not in (None, "", [], {}):
            shown = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
            piece += f" ({shown[:120]})"
        if piece:
            out.append(piece)
    return "; ".join(out)


def error_code(response: requests.Response) -> str | None:
    """The first ``errors[].code`` of a registry answer, if it has one."""
    try:
        data = json.loads(response.content[:65536])
        return str(data["errors"][0]["code"])
    except Exception:  # defensive: any body at all
        return None


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
