"""Light stores, without requests, pydantic or the content model (not even
``json`` or ``re``: see :func:`json_loads`):

- for check, the two reads it makes (the tag listing and a tag's digest) from a
  registry or a layout directory, so that a check process costs little more than
  the interpreter;
- for put, the blob ``HEAD`` and manifest ``PUT`` of a version whose blobs the
  registry already has (``light_first.py``), so that such a put never imports
  requests.

They handle the ordinary case only: 200, 201 and 404 answers, Basic and Bearer
auth, ``Link`` pages on the same host, a well-formed ``index.json``, an ordinary
environment (:func:`unusual_environment`, :func:`proxied`). Anything else raises :class:`Unsure`
and the caller takes the full path (``RegistryStore``, ``LayoutStore``), whose
answers and error messages are the contract. Nothing here retries, logs or
reports an error of its own.
"""

from __future__ import annotations

import os
import time

from ..oci.media_types import MANIFEST_ACCEPT
from ..versions import is_digest, is_tag
from .wire import (
    EXPIRY_MARGIN,
    MIN_TOKEN_SECONDS,
    Challenge,
    api_host,
    next_link,
    parse_challenges,
    parse_repository,
    pick_challenge,
    probe_schemes,
    repository_scope,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (check's path)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    ContextFactory = Callable[[], Any]  # → an _ssl._SSLContext

#: layout.py's tag annotation (a unit test keeps the two equal).
REF_NAME = "org.opencontainers.image.ref.name"
#: Same as the full client's (http.py).
USER_AGENT = "concourse-builder-img"
#: Seconds to connect, and to wait for each read (the full client's TIMEOUT).
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0
#: More than this in one answer, or this many tag pages: not the ordinary case.
MAX_BODY = 16 << 20
MAX_HEAD = 64 << 10
MAX_TAG_PAGES = 1000

_TRANSIENT = frozenset({429, 500, 502, 503, 504})
# What requests would send unchanged in a URL (anything else it would re-quote).
_URL_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?[]@!$&'()*+,;=%"
)
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class Unsure(Exception):
    """The light path cannot vouch for an answer: take the full path."""


class Untrusted(Unsure):
    """The server's TLS certificate did not verify against the trust tried."""


def unusual_environment(env: Mapping[str, str]) -> None:
    """Unsure where requests would send other credentials than the light client: a
    ``.netrc``'s, in place of the registry's. (Proxies are judged per host: see
    :func:`proxied`.)"""
    home = env.get("HOME") or os.path.expanduser("~")
    for path in (env.get("NETRC"), f"{home}/.netrc", f"{home}/_netrc"):
        if path and os.path.exists(path):
            raise Unsure("a netrc file")


def proxied(env: Mapping[str, str], netloc: str) -> bool:
    """Whether requests might reach ``netloc`` through a proxy of the environment
    (the light client connects directly, so it must not go where requests would
    not). False only when no ``*_proxy`` variable is set, or when ``no_proxy``
    names the host as requests' ``should_bypass_proxies`` reads it: ``*``, the
    host (with or without its port, any leading dot dropped), a parent domain, an
    IPv4 address or CIDR block. Where only urllib's second opinion would let
    requests bypass, this still says proxied, and the full client decides."""
    if not any(
        value and name.lower().endswith("_proxy") and name.lower() != "no_proxy"
        for name, value in env.items()
    ):
        return False
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    if no_proxy == "*":
        return False
    host, explicit_port = _host_and_port(netloc)
    entries = [entry for entry in no_proxy.replace(" ", "").split(",") if entry]
    address = _ipv4(host)
    if address is not None:
        return not any(_ipv4_matches(address, host, entry) for entry in entries)
    with_port = f"{host}:{explicit_port}" if explicit_port else host
    for entry in entries:
        entry = entry.lstrip(".")
        if (
            entry in (host, with_port)
            or host.endswith("." + entry)
            or with_port.endswith("." + entry)
        ):
            return False
    return True


def _host_and_port(netloc: str) -> tuple[str, str]:
    """(host as urlparse's ``hostname`` gives it, the port as written or "")."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    explicit = str(int(port)) if port.isdigit() and int(port) else ""  # urlparse's .port
    return host.lower(), explicit


def _ipv4(host: str) -> int | None:
    """``host`` as requests' ``is_ipv4_address`` sees it (``inet_aton``, which takes
    ``127.1`` too), as an integer; None when it is a name."""
    import _socket

    try:
        return int.from_bytes(_socket.inet_aton(host), "big")
    except (OSError, ValueError):
        return None


def _ipv4_matches(address: int, host: str, entry: str) -> bool:
    """requests' test of an IPv4 host against one ``no_proxy`` entry: a CIDR block
    (``is_valid_cidr``, ``address_in_network``) or the same text."""
    if entry.count("/") == 1:
        network, bits = entry.split("/")
        try:
            mask_bits = int(bits)
        except ValueError:
            return False  # not a CIDR: and not the host's text either (it has a "/")
        base = _ipv4(network)
        if base is None or not 1 <= mask_bits <= 32:
            return False
        mask = (0xFFFFFFFF << (32 - mask_bits)) & 0xFFFFFFFF
        return address & mask == base & mask
    return host == entry


# -- JSON, on the C accelerator of the json package ----------------------------------
#
# The json package imports ``re`` (and with it ``enum``, ``functools``...): more
# than all the rest of a check. Its C scanner and string encoder need none of that.

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _DecoderSettings:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder()``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan: Any = None


def json_loads(text: bytes | str) -> Any:
    """``json.loads(text)`` for a UTF-8 (bytes) or str JSON text; Unsure where
    json.loads would fail or would decode the bytes otherwise."""
    global _scan
    if isinstance(text, bytes):
        if text[:3] == b"\xef\xbb\xbf" or b"\x00" in text[:4]:
            raise Unsure("JSON in another encoding")  # json.detect_encoding's cases
        try:
            text = text.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise Unsure("JSON not UTF-8") from None
    if _scan is None:
        try:
            from _json import make_scanner
        except ImportError:  # not CPython: the json package, then
            import json

            _scan = json.JSONDecoder().scan_once
        else:
            _scan = make_scanner(_DecoderSettings)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, RecursionError):
        raise Unsure("not JSON") from None
    if text[end:].strip(_WHITESPACE):
        raise Unsure("JSON with extra data")
    return value


def json_dumps(value: Any, *, sort_keys: bool = False, compact: bool = False) -> str:
    """``json.dumps(value, sort_keys=..., separators=...)`` for JSON values: str,
    int, float, bool, None, list, tuple and dicts with str keys."""
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # pragma: no cover - not CPython
        import json

        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":") if compact else None)
    item, key = (",", ":") if compact else (", ", ": ")

    def encode(v: Any) -> str:
        if isinstance(v, str):
            return quote(v)
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return int.__repr__(v)
        if isinstance(v, float):
            if v != v:
                return "NaN"
            if v in (float("inf"), float("-inf")):
                return "Infinity" if v > 0 else "-Infinity"
            return float.__repr__(v)
        if isinstance(v, (list, tuple)):
            return "[" + item.join(map(encode, v)) + "]"
        if isinstance(v, dict):
            pairs = sorted(v.items()) if sort_keys else v.items()
            parts = []
            for k, x in pairs:
                if not isinstance(k, str):
                    raise TypeError(f"keys must be str, not {type(k).__name__}")
                parts.append(quote(k) + key + encode(x))
            return "{" + item.join(parts) + "}"
        raise TypeError(f"Object of type {type(v).__name__} is not JSON serializable")

    return encode(value)


# -- a minimal HTTP/1.1 client ------------------------------------------------------


class Response:
    """A complete answer: status, headers (lower-case names, repeated ones joined
    with ", " as requests does) and the whole body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Connection:
    """One keep-alive connection to ``scheme://netloc``, opened on first use and
    reopened once when the server closed an idle one."""

    def __init__(self, scheme: str, netloc: str, context: ContextFactory | None = None) -> None:
        if scheme not in ("http", "https"):
            raise Unsure(f"scheme {scheme}")
        self.scheme = scheme
        self.netloc = netloc
        self.host, self.port = split_netloc(netloc, 443 if scheme == "https" else 80)
        self._context = context
        self._sock: Any = None
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buf = b""

    def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {len(body)}")
        if any("\r" in line or "\n" in line for line in lines):
            raise Unsure("line break in a header")  # requests refuses those too
        try:
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        except UnicodeEncodeError:
            raise Unsure("header not latin-1") from None
        for attempt in (0, 1):
            reused = self._sock is not None
            try:
                if self._sock is None:
                    self._connect()
                self._sock.sendall(data)
                return self._read_response(method)
            except (_Closed, ConnectionError) as e:
                self.close()
                if not reused or attempt:  # else the server closed an idle connection
                    raise Unsure(f"connection: {e or 'closed'}") from None
            except OSError as e:  # refused, timed out, TLS (ssl.SSLError is an OSError)
                self.close()
                if "CERTIFICATE_VERIFY_FAILED" in str(e):
                    raise Untrusted(str(e)) from None
                raise Unsure(f"connection: {e}") from None
        raise Unsure("unreachable")  # pragma: no cover

    # -- internals ------------------------------------------------------------------

    def _connect(self) -> None:
        sock = _tcp(self.host, self.port)
        if self.scheme == "https":
            assert self._context is not None
            try:
                sock = _TLSSocket(sock, self._context(), self.host)
            except BaseException:
                sock.close()
                raise
        self._sock = sock
        self._buf = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _Closed
        self._buf += chunk

    def _read_response(self, method: str) -> Response:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buf) > MAX_HEAD:
                raise Unsure("header too large")
            self._fill()
        head = self._buf[:end].decode("latin-1")
        self._buf = self._buf[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if (
            version not in ("HTTP/1.1", "HTTP/1.0")
            or not (code.isascii() and code.isdigit())
            or rest[3:4] not in ("", " ")
        ):
            raise Unsure("not an HTTP/1.x answer")
        status = int(code)
        if status < 200:
            raise Unsure(f"interim answer {status}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name[0] in " \t":
                raise Unsure("malformed header")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if headers.get("content-encoding", "identity").lower() != "identity":
            raise Unsure("encoded body")
        keep = (
            version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        ) or "keep-alive" in headers.get("connection", "").lower()
        coding = headers.get("transfer-encoding", "").strip().lower()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif coding == "chunked":
            body = self._read_chunked()
        elif coding:
            raise Unsure(f"transfer coding {coding}")
        elif "content-length" in headers:
            length = headers["content-length"]
            if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY:
                raise Unsure("content length")
            body = self._read_exactly(int(length))
        else:
            body = self._read_to_close()
            keep = False
        if not keep:
            self.close()
        return Response(status, headers, body)

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill_or_short()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _fill_or_short(self) -> None:
        try:
            self._fill()
        except _Closed:
            raise Unsure("body ended early") from None

    def _read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 2 :]
                return line
            if len(self._buf) > MAX_HEAD:
                raise Unsure("chunk line too long")
            self._fill_or_short()

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            if not size_text or not set(size_text) <= _HEX_DIGITS:
                raise Unsure("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise Unsure("body too large")
            parts.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise Unsure("bad chunk end")

    def _read_to_close(self) -> bytes:
        while len(self._buf) <= MAX_BODY:
            try:
                self._fill()
            except _Closed:
                data, self._buf = self._buf, b""
                return data
        raise Unsure("body too large")


class _Closed(Exception):
    """The peer closed the connection before a complete answer."""


def _tcp(host: str, port: int) -> Any:
    """A connected TCP socket, from the C module: the ``socket`` module's wrapper
    costs its imports (``enum`` and ``selectors`` among them) and adds nothing here."""
    import _socket

    error: OSError | None = None
    for family, kind, proto, address in _addresses(_socket, host, port):
        sock = _socket_class()(family, kind, proto)
        try:
            # As urllib3 does: no Nagle delay between a TLS handshake's last flight
            # and the request (the server's delayed ACK would add ~40 ms).
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
            sock.settimeout(READ_TIMEOUT)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error or OSError(f"cannot resolve {host}")


_Socket: Any = None


def _socket_class() -> Any:
    """``_socket.socket`` with the weak reference ``_ssl`` keeps to its socket (as
    the ``socket`` module's subclass has)."""
    global _Socket
    if _Socket is None:
        import _socket

        class _Socket(_socket.socket):  # type: ignore[no-redef]
            __slots__ = ("__weakref__",)

    return _Socket


def _addresses(sockets: Any, host: str, port: int) -> list[tuple[int, int, int, Any]]:
    """Where to connect: an IP literal directly, a name through ``getaddrinfo``
    (given bytes, so that the idna codec is not loaded for an ASCII name)."""
    for family in (sockets.AF_INET, sockets.AF_INET6):
        try:
            sockets.inet_pton(family, host)
        except OSError:
            continue
        address = (host, port) if family == sockets.AF_INET else (host, port, 0, 0)
        return [(family, sockets.SOCK_STREAM, 0, address)]
    if not host.isascii():
        raise Unsure("non-ASCII host name")
    found = sockets.getaddrinfo(host.encode("ascii"), port, 0, sockets.SOCK_STREAM)
    return [(family, kind, proto, address) for family, kind, proto, _, address in found]


def split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]`` → (host without brackets, port)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise Unsure(f"address {netloc}")
    else:
        host, _, port_text = netloc.partition(":")
    if not host:
        raise Unsure(f"address {netloc}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise Unsure(f"port in {netloc}")
    return host, int(port_text)


def split_url(url: str) -> tuple[str, str, str]:
    """``scheme://netloc/target`` → (scheme, netloc, target); Unsure for anything
    requests would rewrite (user info, fragments, characters to quote)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not set(url) <= _URL_SAFE:
        raise Unsure("URL")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc or "?" in netloc or "#" in rest or not netloc:
        raise Unsure("URL")
    return scheme.lower(), netloc, "/" + path if slash else "/"


def form_encode(pairs: Sequence[tuple[str, str]]) -> str:
    """``urlencode`` of (key, value) pairs, as requests encodes ``params``."""
    return "&".join(f"{_quote_plus(k)}={_quote_plus(v)}" for k, v in pairs)


def _quote_plus(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def basic_credentials(username: str, password: str, encoding: str) -> str:
    import binascii

    raw = f"{username}:{password}".encode(encoding)
    return "Basic " + binascii.b2a_base64(raw, newline=False).decode("ascii")


# -- TLS ---------------------------------------------------------------------------
#
# On ``_ssl``, the C module under ``ssl``: ``ssl.py`` and the ``socket`` module it
# needs cost more to import (enum conversions of their constants, ``selectors``)
# than the handshake itself. The context is what ``ssl.create_default_context``
# builds (``SSLContext(PROTOCOL_TLS_CLIENT)``: certificates and host name verified,
# TLS 1.2 at least), and the handshake and I/O are the C calls ``ssl.SSLSocket``
# makes. Anything this does not expect is Unsure, and the full client decides.


class _TLSSocket:
    """A blocking TLS connection over a connected ``_socket.socket``."""

    def __init__(self, sock: Any, context: Any, hostname: str) -> None:
        if not hostname.isascii():
            raise Unsure("non-ASCII host name")  # ssl.py would IDNA-encode it
        self._sock = sock
        self._tls = context._wrap_socket(sock, False, hostname, owner=None, session=None)
        self._tls.do_handshake()

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._tls.write(view) :]

    def recv(self, size: int) -> bytes:
        import _ssl

        try:
            return self._tls.read(size)
        except (_ssl.SSLZeroReturnError, _ssl.SSLEOFError):
            return b""  # closed, cleanly or not: what ssl's suppress_ragged_eofs does

    def close(self) -> None:
        self._sock.close()


def tls_contexts(
    insecure: bool, ca_certs: Sequence[str], env: Mapping[str, str]
) -> list[ContextFactory]:
    """The contexts to try, in order, each a factory (``_ssl`` is loaded only for
    HTTPS). They trust at most what the full client trusts, so a handshake the
    light client completes is one the full client would complete too; a failed
    verification is :class:`Untrusted` after the last."""
    if insecure:
        return [lambda: _context(None)]
    if ca_certs:
        # A private CA first: the bundle of public CAs is large to parse and rarely
        # needed; the full client's bundle (public CAs and ca_certs) second.
        return [lambda: _context("".join(ca_certs)), lambda: _context(_full_bundle(ca_certs))]
    # What requests trusts for verify=True: its environment variables, else certifi.
    bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
    return [lambda: _context(None, cafile=bundle or _certifi_file())]


def _context(cadata: str | None, cafile: str | None = None) -> Any:
    """An ``_ssl._SSLContext``: verifying with ``cadata``/``cafile``, or, with
    neither, verifying nothing (``insecure``)."""
    try:
        import _ssl

        context = _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        if cadata is None and cafile is None:
            context.check_hostname = False
            context.verify_mode = _ssl.CERT_NONE
            return context
        if cafile is not None and os.path.isdir(cafile):
            raise Unsure("CA directory")
        context.load_verify_locations(cafile, None, cadata)
        # hostname_checks_common_name = False, as urllib3 sets it (ssl.py's setter).
        context._host_flags |= _ssl.HOSTFLAG_NEVER_CHECK_SUBJECT
    except (ImportError, AttributeError, TypeError, OSError, ValueError) as e:
        raise Unsure(f"TLS context: {e}") from None  # _ssl.SSLError is an OSError
    return context


def _full_bundle(ca_certs: Sequence[str]) -> str:
    from .tls import public_bundle

    return public_bundle() + "\n" + "".join(pem.strip() + "\n" for pem in ca_certs)


def _certifi_file() -> str:
    from importlib.util import find_spec

    spec = find_spec("certifi")
    if spec is None or not spec.submodule_search_locations:
        raise Unsure("no certifi")
    return spec.submodule_search_locations[0] + "/cacert.pem"


# -- the registry --------------------------------------------------------------------


class Memo:
    """Where the light registry keeps what outlives a process (a ``fastcheck.Cache``
    or nothing): the registry's scheme and challenge, and Bearer tokens."""

    def load(self, kind: str, material: str) -> dict[str, Any] | None:
        return None

    def store(self, kind: str, material: str, value: dict[str, Any]) -> None:
        pass

    def drop(self, kind: str, material: str) -> None:
        pass


class LightRegistry:
    """The tag listing, tag digests, blob presence and manifest uploads of one
    repository, as ``RegistryStore`` makes them: ``GET /v2/`` (or its remembered
    answer), Basic or Bearer auth from the challenge (push scope for uploads),
    ``Link`` pages, ``HEAD`` with the full ``Accept`` list. Not thread-safe."""

    def __init__(
        self,
        repository: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
        ca_certs: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        memo: Memo | None = None,
        parsed: tuple[str, str] | None = None,
    ) -> None:
        """``parsed``: what ``parse_repository(repository)`` returned, when known;
        ``env``: the process environment, judged as requests would read it (Unsure
        for a ``.netrc``)."""
        if parsed is None:
            try:
                parsed = parse_repository(repository)
            except Exception:
                raise Unsure("repository") from None
        self.registry, self.name = parsed
        self.insecure = insecure
        self._username = username or None
        self._password = password or ""
        self._env = env or {}
        unusual_environment(self._env)  # proxies are judged per connection (_send)
        self._factories = tls_contexts(insecure, ca_certs, self._env)
        self._contexts: dict[int, Any] = {}
        self._trust: dict[tuple[str, str], int] = {}  # origin → the context that verified
        self._memo = memo or Memo()
        self._probe_key = f"{self.registry}\n{int(insecure)}"
        self._base: tuple[str, str] | None = None  # (scheme, netloc)
        self._challenge: Challenge | None = None
        self._token: tuple[str, str] | None = None  # (token, memo material)
        self._connections: dict[tuple[str, str], Connection] = {}
        self._pull = frozenset({repository_scope(self.name, "pull")})
        self._push = frozenset({repository_scope(self.name, "pull", "push")})
        #: Lines the full client would have logged (INFO), printed on success.
        self.notes: list[str] = []
        #: What came from the memo and what was fetched, for the trace line.
        self.trace: dict[str, str] = {}

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def forget(self) -> None:
        """Drop what the memo holds for this registry (after a fallback, so that the
        next check probes afresh)."""
        self._memo.drop("probe", self._probe_key)
        if self._token is not None:
            self._memo.drop("token", self._token[1])

    # -- check's two reads -----------------------------------------------------------

    def list_tags(self) -> list[str]:
        target: str | None = f"/v2/{self.name}/tags/list"
        tags: list[str] = []
        seen: set[str] = set()
        first = True
        while target:
            if target in seen or len(seen) >= MAX_TAG_PAGES:
                raise Unsure("tag pages")
            seen.add(target)
            response = self._request("GET", target, {"Accept": "*/*"})
            if response.status == 404 and first:
                return []
            if response.status != 200:
                raise Unsure(f"tag list: {response.status}")
            data = _json_body(response)
            page = data.get("tags") or []
            tags.extend(t for t in page if isinstance(t, str))
            link = next_link(response.header("link"))
            target = self._same_origin(link) if link else None
            first = False
        return list(dict.fromkeys(tags))

    def resolve_tag(self, tag: str) -> str | None:
        if not is_tag(tag):  # stricter than check_reference: nothing odd goes into a URL
            raise Unsure("reference")
        target = f"/v2/{self.name}/manifests/{tag}"
        response = self._request("HEAD", target, {"Accept": MANIFEST_ACCEPT})
        if response.status == 404:
            return None
        if response.status != 200:
            raise Unsure(f"manifest HEAD: {response.status}")
        digest = response.header("docker-content-digest") or ""
        if not is_digest(digest):
            raise Unsure("no digest header")  # the full client hashes the manifest
        return digest

    # -- put's pushes of what the registry mostly has ------------------------------------

    def blob_exists(self, digest: str) -> bool:
        if not is_digest(digest):
            raise Unsure("digest")
        response = self._request("HEAD", f"/v2/{self.name}/blobs/{digest}", {"Accept": "*/*"})
        if response.status not in (200, 404):
            raise Unsure(f"blob HEAD: {response.status}")
        return response.status == 200

    def push_manifest(self, content: bytes, media_type: str, reference: str) -> str:
        """PUT a manifest under a tag or its own digest; its digest, once the
        registry has confirmed it stored these very bytes (or did not say)."""
        from hashlib import sha256  # put has it loaded; check never comes here

        digest = "sha256:" + sha256(content).hexdigest()
        if not (is_tag(reference) or reference == digest):
            raise Unsure("reference")
        response = self._request(
            "PUT",
            f"/v2/{self.name}/manifests/{reference}",
            {"Content-Type": media_type},
            scopes=self._push,
            body=content,
        )
        if response.status not in (200, 201):
            raise Unsure(f"manifest PUT: {response.status}")
        stored = response.header("docker-content-digest")
        if stored and stored != digest:
            raise Unsure("the registry stored other bytes")
        return digest

    # -- requests ----------------------------------------------------------------------

    def _context(self, index: int) -> Any:
        if index not in self._contexts:
            self._contexts[index] = self._factories[index]()
        return self._contexts[index]

    def _send(
        self,
        scheme: str,
        netloc: str,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes = b"",
    ) -> Response:
        """One request on the origin's connection. A certificate that does not verify
        is tried with the next trust (see :func:`tls_contexts`)."""
        key = (scheme, netloc)
        while True:
            connection = self._connections.get(key)
            if connection is None:
                if proxied(self._env, netloc):
                    raise Unsure(f"a proxy may be in the way to {netloc}")
                index = self._trust.get(key, 0)
                factory = (lambda i=index: self._context(i)) if scheme == "https" else None
                connection = self._connections[key] = Connection(scheme, netloc, factory)
            try:
                return connection.request(method, target, _with_defaults(headers), body)
            except Untrusted:
                self._connections.pop(key).close()
                index = self._trust.get(key, 0) + 1
                if index >= len(self._factories):
                    raise
                self._trust[key] = index

    def _request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        scopes: frozenset[str] | None = None,
        body: bytes = b"",
    ) -> Response:
        scheme, netloc = self._base_url()
        scopes = scopes or self._pull
        retried = False
        while True:
            sent = dict(headers)
            authorization = self._authorization(scopes)
            if authorization:
                sent["Authorization"] = authorization
            response = self._send(scheme, netloc, method, target, sent, body)
            if response.status == 401:
                header = response.header("www-authenticate") or ""
                challenge = pick_challenge(parse_challenges(header))
                if retried or challenge is None:
                    raise Unsure("401")
                if challenge.scheme == "basic" and (
                    not self._username or (authorization or "").startswith("Basic ")
                ):
                    raise Unsure("401")
                if challenge.scheme not in ("basic", "bearer"):
                    raise Unsure("401")
                self._challenge = challenge
                if self._token is not None:
                    self._memo.drop("token", self._token[1])
                    self._token = None
                asked = challenge.params.get("scope")
                scopes = frozenset(scopes | (frozenset(asked.split(" ")) if asked else frozenset()))
                retried = True
                continue
            if response.status in _TRANSIENT or 300 <= response.status < 400:
                raise Unsure(f"status {response.status}")
            return response

    def _same_origin(self, link: str) -> str:
        """The request target of a ``Link`` on the registry's own origin."""
        scheme, netloc = self._base_url()
        if link.startswith("/") and not link.startswith("//"):
            if not set(link) <= _URL_SAFE or "#" in link:
                raise Unsure("link")
            return link
        link_scheme, link_netloc, target = split_url(link)
        if (link_scheme, link_netloc) != (scheme, netloc):
            raise Unsure("link to another origin")
        return target

    # -- the ping --------------------------------------------------------------------

    def _base_url(self) -> tuple[str, str]:
        if self._base is None:
            memo = self._memo.load("probe", self._probe_key)
            schemes = probe_schemes(self.registry, self.insecure)
            if memo is not None and memo.get("scheme") in schemes:
                self._base = (memo["scheme"], api_host(self.registry))
                challenge = memo.get("challenge")
                if challenge is not None:
                    self._challenge = Challenge(str(challenge[0]), dict(challenge[1]))
                self.trace["probe"] = "memo"
            else:
                self._base = self._probe()
                challenge = self._challenge
                remembered = None if challenge is None else [challenge.scheme, challenge.params]
                self._memo.store(
                    "probe", self._probe_key, {"scheme": self._base[0], "challenge": remembered}
                )
                self.trace["probe"] = "fetched"
            if self._base[0] == "http":
                self.notes.append(f"registry {self.registry}: using plain HTTP (insecure)")
        return self._base

    def _probe(self) -> tuple[str, str]:
        """``RegistryStore._probe``: the schemes in ``probe_schemes`` order, the next
        one after a failure or an answer other than 200 or 401."""
        schemes = probe_schemes(self.registry, self.insecure)
        netloc = api_host(self.registry)
        for i, scheme in enumerate(schemes):
            last = i == len(schemes) - 1
            try:
                response = self._send(scheme, netloc, "GET", "/v2/", {"Accept": "*/*"})
            except Unsure:
                if last:
                    raise
                continue
            if response.status == 401:
                self._challenge = pick_challenge(
                    parse_challenges(response.header("www-authenticate") or "")
                )
            elif response.status != 200:
                if last:
                    raise Unsure(f"GET /v2/: {response.status}")
                continue  # plain HTTP to a TLS port answers 400
            return scheme, netloc
        raise Unsure("no scheme")  # pragma: no cover - the loop returns or raises

    # -- auth ----------------------------------------------------------------------------

    def _authorization(self, scopes: frozenset[str]) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if not self._username:
                return None
            return basic_credentials(self._username, self._password, "utf-8")
        if challenge.scheme == "bearer":
            return "Bearer " + self._bearer(challenge, scopes)
        return None

    def _bearer(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        realm = challenge.params.get("realm") or ""
        service = challenge.params.get("service") or ""
        material = json_dumps(
            [self.registry, realm, service, sorted(scopes), self._username, self._password]
        )
        if self._token is not None and self._token[1] == material:
            return self._token[0]
        memo = self._memo.load("token", material)
        if (
            memo is not None
            and isinstance(memo.get("token"), str)
            and memo["token"]
            and isinstance(memo.get("expires"), (int, float))
            and memo["expires"] > time.time()
        ):
            self._token = (memo["token"], material)
            self.trace["token"] = "memo"
            return memo["token"]
        token, lifetime = self._fetch_token(realm, service, scopes)
        expires = time.time() + max(lifetime - EXPIRY_MARGIN, 1)
        self._memo.store("token", material, {"token": token, "expires": expires})
        self._token = (token, material)
        self.trace["token"] = "fetched"
        return token

    def _fetch_token(self, realm: str, service: str, scopes: frozenset[str]) -> tuple[str, float]:
        scheme, netloc, target = split_url(realm)
        query: list[tuple[str, str]] = [("service", service)] if service else []
        query += [("scope", s) for s in sorted(scopes)]
        if query:
            target += ("&" if "?" in target else "?") + form_encode(query)
        headers = {"Accept": "*/*"}
        if self._username:
            # requests' HTTPBasicAuth, as the full client fetches tokens, is latin-1.
            try:
                headers["Authorization"] = basic_credentials(
                    self._username, self._password, "latin-1"
                )
            except UnicodeEncodeError:
                raise Unsure("credentials") from None
        response = self._send(scheme, netloc, "GET", target, headers)
        if response.status != 200:
            raise Unsure(f"token: {response.status}")
        data = _json_body(response)
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise Unsure("no token")
        try:
            lifetime = max(float(data.get("expires_in") or MIN_TOKEN_SECONDS), MIN_TOKEN_SECONDS)
        except (TypeError, ValueError):
            lifetime = MIN_TOKEN_SECONDS
        return token, lifetime


def _with_defaults(headers: dict[str, str]) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    out.update(headers)
    return out


def _json_body(response: Response) -> dict[str, Any]:
    """A JSON object from an ASCII body (which every charset requests might pick
    decodes alike); Unsure for anything else."""
    body = response.body
    if not body.isascii():
        raise Unsure("non-ASCII body")
    data = json_loads(body)
    if not isinstance(data, dict):
        raise Unsure("not a JSON object")
    return data


# -- the layout directory --------------------------------------------------------------


class LightLayout:
    """The tags of an OCI layout's ``index.json``, read as ``LayoutStore`` reads
    them; Unsure for any entry ``LayoutStore`` would refuse or read differently."""

    def __init__(self, repository: str) -> None:
        path = repository[len("file://") :] if repository.startswith("file://") else repository
        if not path.startswith("/"):
            raise Unsure("relative layout path")
        self.root = path
        self._tags: dict[str, str] | None = None
        self.notes: list[str] = []
        self.trace: dict[str, str] = {}

    def list_tags(self) -> list[str]:
        return list(self._index())

    def resolve_tag(self, tag: str) -> str | None:
        return self._index().get(tag)

    def close(self) -> None:
        pass

    def forget(self) -> None:
        pass

    def _index(self) -> dict[str, str]:
        if self._tags is None:
            self._tags = self._read()
        return self._tags

    def _read(self) -> dict[str, str]:
        try:
            with open(self.root.rstrip("/") + "/index.json", "rb") as f:
                content = f.read()
        except FileNotFoundError:
            return {}
        except OSError:
            raise Unsure("index.json unreadable") from None
        data = json_loads(content)
        if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
            raise Unsure("not an OCI index")
        tags: dict[str, str] = {}
        for item in data["manifests"]:
            if not isinstance(item, dict) or "mediaType" not in item:
                raise Unsure("descriptor")
            digest, size = item.get("digest"), item.get("size")
            if not isinstance(digest, str) or not is_digest(digest):
                raise Unsure("descriptor digest")
            if type(size) is not int or size < 0:
                raise Unsure("descriptor size")
            annotations = item.get("annotations")
            if not annotations:
                continue
            if type(annotations) is not dict:
                raise Unsure("descriptor annotations")
            name = annotations.get(REF_NAME)
            if name:
                if not isinstance(name, str):
                    raise Unsure("tag name")
                tags[name] = digest
        return tags
