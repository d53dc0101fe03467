"""A :class:`~builder_resource.store.base.Store` on an OCI registry, over the
distribution API (distribution-spec ``spec.md``): the one registry client.

Everything a registry needs lives here and in ``auth.py``: the ping that learns
the scheme and the auth challenge, Basic and Bearer auth, retries of transient
failures, tag pages, and the meaning of every answer. The bytes travel over a
transport (``transport.py``): requests, or for the small requests of check and of
a put whose blobs the registry has, the standard library's ``http.client``, which
hands over to requests wherever it cannot vouch for doing the same.

Blobs stream both ways in 1 MiB pieces, so memory stays flat whatever their size;
every byte read is verified against its digest. Uploads are HEAD first (skip what
the registry has), then POST and one monolithic PUT to the Location the registry
returned. An upload that fails midway starts over from a
fresh POST and re-reads its source; a download that breaks resumes with ``Range``.

Retries follow what containers/image does: connection errors, 5xx and 429 are
retried a bounded number of times with a doubling backoff, and a ``Retry-After``
(seconds or an HTTP-date) is honoured up to a cap.
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

from ..certificates import Trust
from ..errors import DigestMismatchError, ImageError, NotFoundError, StoreError, TagTakenError
from ..oci.blobs import BlobSource, BytesBlob
from ..oci.descriptor import Descriptor
from ..oci.digest import CHUNK, VerifyingReader, check_digest, sha256_digest
from ..oci.media_types import ALL_MANIFESTS, MANIFEST_ACCEPT, OCI_INDEX
from ..oci.references import is_digest
from .auth import Authenticator, Challenge, Memo, repository_scope
from .progress import Progress, human
from .transport import Body, Response, Transport, TransportError, Unsure, read_body
from .wire import (
    api_host,
    check_reference,
    error_code,
    error_summary,
    next_link,
    parse_repository,
    probe_schemes,
)

log = logging.getLogger("builder_resource.store")

#: Registries must accept manifests of 4 MB; anything far above is not a manifest.
MAX_MANIFEST = 16 << 20
#: A registry that keeps answering "next page" is looping.
MAX_PAGES = 10_000
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


#: The largest in-memory blob sent as one bytes body rather than streamed.
SMALL_BLOB = 256 << 10


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

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 0)."""
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after)
        return min(self.backoff * (2**attempt), self.cap)


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


class _Transient(StoreError):
    """A failure another attempt may cure; raised once a request ran out of tries
    (or was not to be retried here because its caller retries a larger unit)."""

    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RegistryStore:
    """One repository of an OCI registry. Thread-safe: blobs of a version may be
    pushed or pulled from a few threads sharing the connection pool."""

    def __init__(
        self,
        repository: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
        ca_certs: Sequence[str] = (),
        policy: RetryPolicy | None = None,
        lean: bool = False,
        hand_over: bool = True,
        env: Mapping[str, str] | None = None,
        memo: Memo | None = None,
    ) -> None:
        """``lean``: the standard library's transport first; when it declines, requests
        from then on, or with ``hand_over`` off, :class:`~.transport.Unsure` for the
        caller (check's fast path, which then runs its full path). ``env``: the
        process environment the lean transport judges. ``memo``: where the registry's
        scheme, challenge and tokens outlive the process (check's cache)."""
        self.registry, self.name = parse_repository(repository)
        self.location = f"{self.registry}/{self.name}"
        self.insecure = insecure
        self.policy = policy or RetryPolicy()
        self._trust = Trust(tuple(ca_certs), insecure)
        self._full: Transport | None = None
        self._transport_lock = threading.Lock()
        self._hand_over = hand_over
        self.transport: Transport = self._lean(env) if lean else self._requests()
        self._memo = memo
        self.auth = Authenticator(
            self.registry, self._fetch, username=username, password=password, memo=memo
        )
        self._base: str | None = None
        self._base_lock = threading.Lock()
        self._pull = frozenset({repository_scope(self.name, "pull")})
        self._referrers_api: bool | None = None  # known after the first referrers GET
        self._push = frozenset({repository_scope(self.name, "pull", "push")})

    def __repr__(self) -> str:
        return f"RegistryStore({self.location!r})"

    def close(self) -> None:
        self.transport.close()
        if self._full is not None:
            self._full.close()

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def uses_requests(self) -> bool:
        """Whether requests carried (or was set to carry) any request so far."""
        return self._full is not None

    def forget(self) -> None:
        """Drop what the memo holds for this registry, so that the next process
        probes and authenticates afresh (after a failure)."""
        if self._memo is not None:
            self._memo.drop("probe", self._probe_key)
        self.auth.forget()

    # -- blobs --------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        check_digest(digest)
        what = f"HEAD blob {digest}"
        response = self._request(
            "HEAD", self._url("blobs", digest), self._pull, what, follow_redirects=True
        )
        if response.status == 200:
            return True
        if response.status == 404:
            return False
        raise self._error(response, what)

    def push_blob(self, blob: BlobSource) -> None:
        """Upload ``blob`` unless the registry has it."""
        digest = check_digest(blob.digest)
        if self.blob_exists(digest):
            log.debug("%s: blob %s already present", self.location, short(digest))
            return
        progress = Progress(f"push {short(digest)} to {self.location}", blob.size)
        attempt = 0
        while True:
            try:
                self._upload(blob, progress)
                break
            except _Transient as e:
                if attempt + 1 >= self.policy.tries:
                    raise StoreError(f"{e} (gave up after {attempt + 1} tries)") from None
                delay = self.policy.delay(attempt, e.retry_after)
                log.warning("%s; starting the upload again in %.1f s", e, delay)
                self.policy.sleep(delay)
                attempt += 1
                progress.restart()
                if self.blob_exists(digest):  # the lost answer may have been a success
                    break
        progress.finish()

    def _upload(self, blob: BlobSource, progress: Progress) -> None:
        digest = blob.digest
        what = f"push blob {digest}"
        uploads = self._url("blobs", "uploads/")
        response = self._request("POST", uploads, self._push, what, body=b"", retry=False)
        if response.status != 202:
            raise self._error(response, what)
        location = response.header("Location")
        if not location:
            raise StoreError(f"registry {self.registry}: {what}: upload started without a Location")
        url = urljoin(response.url, location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        response = self._request(
            "PUT",
            url,
            self._push,
            what,
            # A small blob held in memory (a config, an attestation) goes as bytes,
            # which the lean transport carries: a put whose only new blobs are such
            # needs no requests. Anything else streams.
            body=(lambda: blob.data)
            if isinstance(blob, BytesBlob) and blob.size <= SMALL_BLOB
            else (lambda: _UploadBody(blob, progress)),
            headers={"Content-Type": "application/octet-stream"},
            retry=False,
        )
        if response.status == 404 and error_code(read_body(response, 65536) or b"") == (
            "BLOB_UPLOAD_UNKNOWN"
        ):
            raise _Transient(f"registry {self.registry}: {what}: upload session lost")
        if response.status not in (201, 204):
            raise self._error(response, what)
        stored = response.header("Docker-Content-Digest")
        if stored and stored != digest:
            raise StoreError(f"registry {self.registry}: {what}: stored as {stored}")

    @contextmanager
    def open_blob(self, digest: str, size: int | None = None) -> Iterator[BinaryIO]:
        check_digest(digest)
        download = _Download(self, digest, size)
        try:
            yield VerifyingReader(download, digest, size, what=f"blob from {self.location}")  # type: ignore[misc]
        finally:
            download.close()

    def _get_blob(self, digest: str, offset: int) -> Response:
        """A streaming GET of the blob from ``offset`` on (a ``Range`` request when
        resuming), with the response positioned at ``offset``."""
        what = f"GET blob {digest}"
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._request(
            "GET",
            self._url("blobs", digest),
            self._pull,
            what,
            headers=headers,
            stream=True,
            follow_redirects=True,
        )
        if response.status == 404:
            response.close()
            raise NotFoundError(f"blob {digest} not found in {self.location}")
        if offset and response.status == 206:
            if not (response.header("Content-Range") or "").startswith(f"bytes {offset}-"):
                response.close()
                raise StoreError(f"registry {self.registry}: {what}: wrong range in resumed GET")
            return response
        if response.status != 200:
            raise self._error(response, what)
        skip = offset
        while skip:  # the registry ignored Range: drop what was read already
            try:
                data = response.read(min(skip, CHUNK))
            except TransportError as e:
                data = b""
                reason = str(e)
            else:
                reason = "body ended early"
            if not data:
                response.close()
                raise _Transient(f"registry {self.registry}: {what}: {reason}")
            skip -= len(data)
        return response

    # -- manifests ----------------------------------------------------------------

    def push_manifest(self, content: bytes, media_type: str, reference: str) -> str:
        check_reference(reference)
        digest = sha256_digest(content)
        if is_digest(reference) and reference != digest:
            raise DigestMismatchError(f"manifest pushed as {reference} hashes to {digest}")
        what = f"push manifest {reference}"
        response = self._request(
            "PUT",
            self._url("manifests", reference),
            self._push,
            what,
            body=content,
            headers={"Content-Type": media_type},
        )
        if response.status not in (200, 201):
            raise self._error(response, what)
        stored = response.header("Docker-Content-Digest")
        if stored and stored != digest:
            raise StoreError(
                f"registry {self.registry}: {what}: stored as {stored}, not {digest} "
                "(the registry changed the bytes)"
            )
        return digest

    def check_push(self) -> None:
        what = "start an upload (checking push rights)"
        response = self._request("POST", self._url("blobs", "uploads/"), self._push, what, body=b"")
        if response.status != 202:
            raise self._error(response, what)
        location = response.header("Location")
        response.close()
        if location:  # cancel it: distribution would otherwise keep it a while
            self._request("DELETE", urljoin(response.url, location), self._push, what).close()

    def tag_once(self, tag: str, content: bytes, media_type: str) -> None:
        """Distribution has no conditional PUT: check right before the write, read
        the tag back after it. The loser of two puts whose writes cross fails here;
        two writes that each land between the other's check and read-back cannot
        be told apart (a window of one request's round trip, README)."""
        digest = sha256_digest(content)
        held = self.resolve_tag(tag)
        if held is not None and held != digest:
            raise TagTakenError(self.location, tag, held)
        self.push_manifest(content, media_type, tag)
        held = self.resolve_tag(tag)
        if held != digest:
            raise TagTakenError(self.location, tag, str(held))

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        check_reference(reference)
        what = f"GET manifest {reference}"
        response, content = self._read(
            self._url("manifests", reference),
            self._pull,
            what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        if response.status == 404:
            response.close()
            raise NotFoundError(f"manifest {reference} not found in {self.location}")
        if response.status != 200:
            raise self._error(response, what)
        if content is None:
            raise StoreError(f"registry {self.registry}: {what}: larger than {human(MAX_MANIFEST)}")
        media_type = _media_type(response.header("Content-Type"))
        declared = _declared_media_type(content)
        if media_type not in ALL_MANIFESTS and declared:
            media_type = declared
        elif declared and declared != media_type:
            raise StoreError(
                f"registry {self.registry}: {what}: served as {media_type} "
                f"but its mediaType is {declared}"
            )
        actual = sha256_digest(content)
        expected = reference if is_digest(reference) else None
        expected = expected or response.header("Docker-Content-Digest")
        if expected and is_digest(expected) and actual != expected:
            raise DigestMismatchError(
                f"manifest {reference} from {self.location}: expected {expected}, got {actual}"
            )
        return content, media_type

    def resolve_tag(self, tag: str) -> str | None:
        check_reference(tag)
        what = f"HEAD manifest {tag}"
        response = self._request(
            "HEAD",
            self._url("manifests", tag),
            self._pull,
            what,
            headers={"Accept": MANIFEST_ACCEPT},
            follow_redirects=True,
        )
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._error(response, what)
        digest = response.header("Docker-Content-Digest") or ""
        if is_digest(digest):
            return digest
        try:  # a registry that omits the header: hash the manifest itself
            return sha256_digest(self.get_manifest(tag)[0])
        except NotFoundError:
            return None

    def push_referrer(self, content: bytes, media_type: str) -> str:
        from . import referrers

        digest = self.push_manifest(content, media_type, sha256_digest(content))
        subject = referrers.subject_of(content)
        if subject is None:
            raise StoreError(f"registry {self.registry}: referrer {digest} has no subject")
        if self._referrers_api is None:
            self.referrers(subject)  # learns whether the registry has the API
        if not self._referrers_api:
            tag = referrers.fallback_tag(subject)
            try:
                existing: bytes | None = self.get_manifest(tag)[0]
            except NotFoundError:
                existing = None
            added = referrers.referrer_descriptor(content, media_type)
            where = f"{self.location}:{tag}"
            self.push_manifest(referrers.with_referrer(existing, added, where), OCI_INDEX, tag)
        return digest

    def referrers(self, digest: str) -> list[Descriptor]:
        """The referrers API; where it answers 404 (it never does on a registry that
        has it), the referrers tag schema."""
        from . import referrers

        check_digest(digest)
        what = f"GET referrers of {digest}"
        found: list[Descriptor] = []
        for page in self._pages(self._url("referrers", digest), what, {"Accept": OCI_INDEX}):
            self._referrers_api = page is not None
            if page is None:
                tag = referrers.fallback_tag(digest)
                try:
                    index = self.get_manifest(tag)[0]
                except NotFoundError:
                    return []
                return referrers.parse_referrers(index, f"{self.location}:{tag}")
            found += referrers.parse_referrers(page, f"{self.location} {what}")
        return found

    def list_tags(self) -> list[str]:
        tags: list[str] = []
        for page in self._pages(self._url("tags", "list"), "list tags"):
            if page is None:
                return []
            try:
                listed = json.loads(page).get("tags") or []
            except (ValueError, AttributeError):
                raise StoreError(
                    f"registry {self.registry}: list tags: answer is not a tag list"
                ) from None
            tags.extend(t for t in listed if isinstance(t, str))
        return list(dict.fromkeys(tags))

    def _pages(
        self, url: str, what: str, headers: dict[str, str] | None = None
    ) -> Iterator[bytes | None]:
        """The bodies of ``url`` and of the pages ``Link: rel="next"`` leads to
        (distribution 3 and most registries page; 2.8 sends everything at once).
        None for a 404 of the first page: no such repository, or no such API."""
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            if next_url in seen or len(seen) >= MAX_PAGES:
                raise StoreError(f"registry {self.registry}: {what} does not end ({next_url})")
            seen.add(next_url)
            response, body = self._read(next_url, self._pull, what, headers=headers)
            if response.status == 404 and len(seen) == 1:
                response.close()
                yield None
                return
            if response.status != 200:
                raise self._error(response, what)
            yield body or b""
            link = next_link(response.header("Link"))
            next_url = urljoin(response.url, link) if link else None

    # -- HTTP ---------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        return f"{self._base_url()}/v2/{self.name}/" + "/".join(parts)

    @property
    def _probe_key(self) -> str:
        return f"{self.registry}\n{int(self.insecure)}"

    def _base_url(self) -> str:
        if self._base is None:
            with self._base_lock:
                if self._base is None:
                    scheme = self._remembered_scheme() or self._probe()
                    if scheme == "http":
                        log.info("registry %s: using plain HTTP (insecure)", self.registry)
                    self._base = f"{scheme}://{api_host(self.registry)}"
        return self._base

    def _remembered_scheme(self) -> str | None:
        """The scheme (and challenge) a memo kept from an earlier process's ping."""
        remembered = self._memo.load("probe", self._probe_key) if self._memo else None
        if not remembered or remembered.get("scheme") not in probe_schemes(
            self.registry, self.insecure
        ):
            return None
        challenge = remembered.get("challenge")
        if challenge is not None:
            self.auth.challenge = Challenge(str(challenge[0]), dict(challenge[1]))
        return str(remembered["scheme"])

    def _probe(self) -> str:
        """Ping ``/v2/``: learn the scheme (HTTPS; with ``insecure``, plain HTTP when
        HTTPS fails, or first on loopback) and the auth challenge."""
        schemes = probe_schemes(self.registry, self.insecure)
        failure: StoreError | None = None
        for i, scheme in enumerate(schemes):
            last = i == len(schemes) - 1
            url = f"{scheme}://{api_host(self.registry)}/v2/"
            try:
                # Transient failures are retried on this scheme: a 5xx or a reset says
                # nothing about the scheme; a TLS error or a 400 does.
                response = self._request("GET", url, frozenset(), "GET /v2/", auth=False)
            except StoreError as e:
                if last:
                    raise
                log.debug("registry %s: %s failed (%s); trying the next", self.registry, scheme, e)
                continue
            if response.status == 401:
                self.auth.observe(response)
            elif response.status != 200:
                failure = StoreError(
                    f"registry {self.registry}: GET /v2/: {self._summary(response)} "
                    "(not an OCI distribution registry?)"
                )
                if last:
                    raise failure
                continue  # plain HTTP to a TLS port answers 400
            if self._memo is not None:
                challenge = self.auth.challenge
                kept = None if challenge is None else [challenge.scheme, challenge.params]
                self._memo.store("probe", self._probe_key, {"scheme": scheme, "challenge": kept})
            return scheme
        assert failure is not None
        raise failure

    def _fetch(self, url: str, headers: dict[str, str]) -> Response:
        """A token server's answer (for ``auth.py``), with retries."""
        what = f"token server {urlsplit(url).netloc}"
        return self._request("GET", url, frozenset(), what, headers=headers, auth=False)

    def _request(
        self,
        method: str,
        url: str,
        scopes: frozenset[str],
        what: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | Callable[[], Body] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
        auth: bool = True,
    ) -> Response:
        """One request with auth and retries. Returns any final response, whose
        status the caller judges; raises ``_Transient`` when transient failures
        outlast the tries, ``StoreError`` on other connection failures and on an
        authentication the registry keeps refusing. ``body`` may be a factory, called
        once per attempt, so a retried upload re-reads its source."""
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        tries = self.policy.tries if retry else 1
        attempt = 0
        reauthenticated = False
        while True:
            sent = dict(headers or {})
            authorization = self.auth.authorization(scopes) if auth else None
            if authorization:
                sent["Authorization"] = authorization
            data = body() if callable(body) else body
            try:
                response = self._send(method, url, sent, data, stream, follow_redirects)
            except TransportError as e:
                if e.untrusted:
                    raise StoreError(
                        f"registry {self.registry}: {what}: TLS certificate not trusted "
                        f"({e}); add its CA to ca_certs or LOCAL_CA_CERTIFICATE"
                    ) from None
                message = f"registry {self.registry}: {what}: {e}"
                if not e.transient:
                    raise StoreError(message) from None
                if attempt + 1 >= tries:
                    suffix = f" (gave up after {tries} tries)" if tries > 1 else ""
                    raise _Transient(message + suffix) from None
                self._pause(message, attempt, tries)
                attempt += 1
                continue
            finally:
                close = getattr(data, "close", None)
                if close is not None:
                    close()
            if auth and response.status == 401:
                wider = None
                if not reauthenticated:
                    wider = self.auth.unauthorized(response, scopes, authorization)
                if wider is not None:
                    response.close()
                    scopes = wider
                    reauthenticated = True
                    continue
                summary = self._summary(response, detail=False)
                raise self.auth.failure(summary, what)
            if response.status in TRANSIENT_STATUS:
                message = f"registry {self.registry}: {what}: {self._summary(response)}"
                retry_after = response.header("Retry-After")
                if attempt + 1 >= tries:
                    suffix = f" (gave up after {tries} tries)" if tries > 1 else ""
                    raise _Transient(message + suffix, retry_after)
                self._pause(message, attempt, tries, retry_after)
                attempt += 1
                continue
            return response

    def _read(
        self,
        url: str,
        scopes: frozenset[str],
        what: str,
        *,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> tuple[Response, bytes | None]:
        """A GET and, for a 200, its whole body (None past ``MAX_MANIFEST``), read
        inside the retries: a body cut short is as transient as a reset before it.
        A 200 comes back closed; any other answer open, for the caller to judge."""
        tries = self.policy.tries
        for attempt in range(tries):
            response = self._request(
                "GET", url, scopes, what, headers=headers, stream=stream, follow_redirects=True
            )
            if response.status != 200:
                return response, None
            try:
                return response, read_body(response, MAX_MANIFEST)
            except TransportError as e:
                message = f"registry {self.registry}: {what}: {e}"
                if not e.transient or attempt + 1 >= tries:
                    suffix = f" (gave up after {tries} tries)" if e.transient else ""
                    raise StoreError(message + suffix) from None
                self._pause(message, attempt, tries)
            finally:
                response.close()
        raise AssertionError("unreachable: the last try returns or raises")

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body,
        stream: bool,
        follow_redirects: bool,
    ) -> Response:
        """The request on the current transport; where the lean one declines, on
        requests from then on (or the caller decides: ``hand_over`` off)."""
        while True:
            transport = self.transport
            try:
                return transport.request(
                    method, url, headers, body, follow_redirects=follow_redirects, stream=stream
                )
            except Unsure as e:
                if not self._hand_over or transport is self._full:
                    raise
                with self._transport_lock:
                    if self.transport is transport:
                        log.debug("registry %s: requests from here on (%s)", self.registry, e)
                        self.transport = self._requests()

    def _lean(self, env: Mapping[str, str] | None) -> Transport:
        from .stdlib_transport import StdlibTransport

        try:
            return StdlibTransport(self._trust, env)
        except Unsure as e:
            if not self._hand_over:
                raise
            log.debug("registry %s: requests from the start (%s)", self.registry, e)
            return self._requests()

    def _requests(self) -> Transport:
        """The transport on requests, made on first need (importing requests)."""
        if self._full is None:
            from .requests_transport import RequestsTransport

            self._full = RequestsTransport(self._trust.requests_verify())
        return self._full

    def _pause(
        self, message: str, attempt: int, tries: int, retry_after: str | None = None
    ) -> None:
        delay = self.policy.delay(attempt, retry_after)
        log.warning("%s; retrying in %.1f s (%d/%d)", message, delay, attempt + 1, tries)
        self.policy.sleep(delay)

    def _summary(self, response: Response, detail: bool = True) -> str:
        """The answer in one line; reads (some of) its body and closes it."""
        try:
            body = read_body(response, 65536) or b""
        except TransportError:  # a broken body must not hide the status
            body = b""
        response.close()
        return error_summary(response, body, detail=detail)

    def _error(self, response: Response, what: str) -> StoreError:
        cls = NotFoundError if response.status == 404 else StoreError
        return cls(f"registry {self.registry}: {what}: {self._summary(response)}")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip()


def _declared_media_type(content: bytes) -> str | None:
    try:
        value = json.loads(content).get("mediaType")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


class _UploadBody:
    """A blob as an iterable of 1 MiB pieces whose ``len`` gives requests the
    Content-Length, so the PUT is not chunked (measured fastest, reference §8).
    The source is opened when the body is sent and closed after."""

    def __init__(self, blob: BlobSource, progress: Progress) -> None:
        self._blob = blob
        self._progress = progress
        self._file: BinaryIO | None = None

    def __len__(self) -> int:
        return self._blob.size

    def __iter__(self) -> Iterator[bytes]:
        self._progress.restart()
        self._file = stream = self._blob.open()
        remaining = self._blob.size
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                raise ImageError(
                    f"blob {self._blob.digest}: source ended {remaining} bytes short of its size"
                )
            remaining -= len(chunk)
            self._progress.update(len(chunk))
            yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Download(io.RawIOBase):
    """The body of a blob GET as a stream. A connection dropped midway is resumed
    with a ``Range`` request from where it broke (a bounded number of times)."""

    def __init__(self, store: RegistryStore, digest: str, size: int | None) -> None:
        super().__init__()
        self._store = store
        self._digest = digest
        self._offset = 0
        self._resumes = 0
        self._response: Response | None = store._get_blob(digest, 0)
        length = self._response.header("Content-Length")
        if size is not None and length and length.isdigit() and int(length) != size:
            self._response.close()
            raise DigestMismatchError(
                f"blob {digest} from {store.location}: registry sends {length} bytes, "
                f"expected {size}"
            )
        total = size if size is not None else (int(length) if length and length.isdigit() else None)
        self._progress = Progress(f"pull {short(digest)} from {store.location}", total)

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while data := self.read(CHUNK):
                parts.append(data)
            return b"".join(parts)
        while True:
            if self._response is None:
                return b""
            try:
                data = self._response.read(n)
            except TransportError as e:
                self._resume(e)
                continue
            if data:
                self._offset += len(data)
                self._progress.update(len(data))
                return data
            self._progress.finish()
            self._response.close()
            self._response = None
            return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _resume(self, error: BaseException) -> None:
        store = self._store
        reason = str(error)
        if self._response is not None:
            self._response.close()
            self._response = None
        if self._resumes + 1 >= store.policy.tries:
            raise StoreError(
                f"registry {store.registry}: GET blob {self._digest}: {reason} "
                f"(gave up after {self._resumes + 1} tries)"
            )
        delay = store.policy.delay(self._resumes)
        log.warning(
            "registry %s: GET blob %s broke at %s: %s; resuming in %.1f s",
            store.registry,
            short(self._digest),
            human(self._offset),
            reason,
            delay,
        )
        store.policy.sleep(delay)
        self._resumes += 1
        self._response = store._get_blob(self._digest, self._offset)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()
