"""What the registry client asks of an HTTP library: one request, one answer.

The client (``registry.py``) owns everything a registry needs: auth, retries,
pagination, the meaning of each status. A transport only moves bytes, so there
are two small ones behind this interface: requests (``requests_transport.py``),
for blob transfers and any environment out of the ordinary, and the standard
library's ``http.client`` (``stdlib_transport.py``), which spares check and a
put of blobs already there the import of requests. The lean one may decline a
request (:class:`Unsure`); the client then hands over to requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

#: (connect, read) seconds. The read timeout also covers the registry's reply to
#: a large PUT, which it sends only once it has moved the blob into place.
TIMEOUT = (30.0, 300.0)
USER_AGENT = "concourse-builder-img"

#: What a request may carry: nothing, bytes, or 1 MiB pieces of a blob whose
#: ``len`` is the blob's size (so the upload is not chunked).
Body = bytes | Iterable[bytes] | None


class TransportError(Exception):
    """The request got no answer, or its body broke off. ``transient``: another
    attempt may succeed; ``untrusted``: the server's certificate did not verify."""

    def __init__(self, reason: str, *, transient: bool, untrusted: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient
        self.untrusted = untrusted


class Unsure(Exception):
    """The lean transport cannot vouch for doing what requests would do here."""


class Untrusted(Unsure):
    """The lean transport's TLS verification failed: requests says why."""


class Response(Protocol):
    """A registry's answer; the body is read in pieces, and closed when done."""

    status: int
    reason: str
    #: The URL that answered (after redirects): relative ``Location`` and ``Link``
    #: values are resolved against it.
    url: str

    def header(self, name: str) -> str | None:
        """A header's value (repeated headers joined by ", "), any case of name."""
        ...

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body, b"" at its end. ``TransportError`` when
        the connection breaks."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body = None,
        *,
        follow_redirects: bool = False,
        stream: bool = False,
    ) -> Response:
        """Send one request. ``stream``: an answer read as it comes (blobs,
        manifests); otherwise it is read whole. The lean transport reads every answer
        whole, and declines one larger than its limit and any upload that streams
        (a blob's pieces): those go to requests."""
        ...

    def close(self) -> None: ...


def read_body(response: Response, limit: int) -> bytes | None:
    """The whole body, or None when it is longer than ``limit`` bytes."""
    out = bytearray()
    while chunk := response.read(1 << 20):
        out += chunk
        if len(out) > limit:
            return None
    return bytes(out)
