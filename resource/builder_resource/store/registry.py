"""A :class:`~builder_resource.store.base.Store` on an OCI registry, over the
distribution API (distribution-spec ``spec.md``) with requests.

Blobs stream both ways in 1 MiB pieces, so memory stays flat whatever their size;
every byte read is verified against its digest. Uploads are HEAD first (skip what
the registry has), then a cross-repository mount when the caller knows another
repository of the registry holds the blob, else POST and one monolithic PUT to the
Location the registry returned. Transient failures are retried (see ``http.py``);
an upload that fails midway starts over from a fresh POST and re-reads its source.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin

import requests
import urllib3

from ..errors import DigestMismatchError, ImageError, NotFoundError, StoreError
from ..oci.blobs import BlobSource
from ..oci.digest import CHUNK, DIGEST_PATTERN, VerifyingReader, check_digest, sha256_digest
from ..oci.media_types import ALL_MANIFESTS, MANIFEST_ACCEPT
from .auth import Authenticator, repository_scope
from .http import (
    TIMEOUT,
    RetryPolicy,
    describe_exception,
    error_code,
    error_summary,
    is_transient,
    is_transient_error,
    make_session,
)
from .progress import Progress, human
from .wire import api_host, check_reference, next_link, parse_repository, probe_schemes

log = logging.getLogger("builder_resource.store")

#: Registries must accept manifests of 4 MB; anything far above is not a manifest.
MAX_MANIFEST = 16 << 20
#: A registry that keeps answering "next page" is looping.
MAX_TAG_PAGES = 10_000


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


@dataclass
class TransferStats:
    """What a store moved, for the closing log line of a put or get."""

    pushed: int = 0
    skipped: int = 0
    mounted: int = 0
    bytes_pushed: int = 0
    bytes_pulled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, n in counts.items():
                setattr(self, key, getattr(self, key) + n)


class _Transient(StoreError):
    """A failure another attempt may cure; raised once a request ran out of tries
    (or was not to be retried here because its caller retries a larger unit)."""

    def __init__(self, message: str, response: requests.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


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
        ca_certs: list[str] | tuple[str, ...] = (),
        policy: RetryPolicy | None = None,
    ) -> None:
        self.registry, self.name = parse_repository(repository)
        self.location = f"{self.registry}/{self.name}"
        self.insecure = insecure
        self.policy = policy or RetryPolicy()
        self.session, self._verify = make_session(insecure=insecure, ca_certs=list(ca_certs))
        self.auth = Authenticator(
            self.registry,
            self.session,
            verify=self._verify,
            username=username,
            password=password,
            policy=self.policy,
        )
        self.stats = TransferStats()
        self._base: str | None = None
        self._base_lock = threading.Lock()
        self._pull = frozenset({repository_scope(self.name, "pull")})
        self._push = frozenset({repository_scope(self.name, "pull", "push")})

    def __repr__(self) -> str:
        return f"RegistryStore({self.location!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blobs --------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        check_digest(digest)
        what = f"HEAD blob {digest}"
        response = self._request(
            "HEAD", self._url("blobs", digest), self._pull, what, allow_redirects=True
        )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, what)

    def push_blob(self, blob: BlobSource, mount_from: str | None = None) -> None:
        """Upload ``blob`` unless the registry has it; mount it from ``mount_from``
        (another repository of this registry) when given and possible."""
        digest = check_digest(blob.digest)
        if self.blob_exists(digest):
            self.stats.add(skipped=1)
            log.debug("%s: blob %s already present", self.location, short(digest))
            return
        progress = Progress(f"push {short(digest)} to {self.location}", blob.size)
        attempt = 0
        while True:
            try:
                self._upload(blob, mount_from, progress)
                break
            except _Transient as e:
                if attempt + 1 >= self.policy.tries:
                    raise StoreError(f"{e} (gave up after {attempt + 1} tries)") from None
                delay = self.policy.delay(attempt, e.response)
                log.warning("%s; starting the upload again in %.1f s", e, delay)
                self.policy.sleep(delay)
                attempt += 1
                progress.restart()
                if self.blob_exists(digest):  # the lost answer may have been a success
                    break
        progress.finish()

    def _upload(self, blob: BlobSource, mount_from: str | None, progress: Progress) -> None:
        digest = blob.digest
        uploads = self._url("blobs", "uploads/")
        what = f"push blob {digest}"
        if mount_from and mount_from != self.name:
            parse_repository(f"{self.registry}/{mount_from}")
            scopes = self._push | {repository_scope(mount_from, "pull")}
            response = self._request(
                "POST",
                uploads,
                scopes,
                f"mount blob {digest} from {mount_from}",
                params={"mount": digest, "from": mount_from},
                body=b"",
                retry=False,
            )
            if response.status_code == 201:
                self.stats.add(mounted=1)
                log.debug("%s: mounted %s from %s", self.location, short(digest), mount_from)
                return
            # 202: the registry started an ordinary upload instead; use it.
        else:
            response = self._request("POST", uploads, self._push, what, body=b"", retry=False)
        if response.status_code != 202:
            raise self._error(response, what)
        location = response.headers.get("Location")
        if not location:
            raise StoreError(f"registry {self.registry}: {what}: upload started without a Location")
        url = urljoin(response.url, location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        response = self._request(
            "PUT",
            url,
            self._push,
            what,
            body=lambda: _UploadBody(blob, progress),
            headers={"Content-Type": "application/octet-stream"},
            retry=False,
        )
        if response.status_code == 404 and error_code(response) == "BLOB_UPLOAD_UNKNOWN":
            raise _Transient(f"registry {self.registry}: {what}: upload session lost", response)
        if response.status_code not in (201, 204):
            raise self._error(response, what)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise StoreError(f"registry {self.registry}: {what}: stored as {stored}")
        self.stats.add(pushed=1, bytes_pushed=blob.size)

    @contextmanager
    def open_blob(self, digest: str, size: int | None = None) -> Iterator[BinaryIO]:
        check_digest(digest)
        download = _Download(self, digest, size)
        try:
            yield VerifyingReader(download, digest, size, what=f"blob from {self.location}")  # type: ignore[misc]
        finally:
            download.close()

    def _get_blob(self, digest: str, offset: int) -> requests.Response:
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
            allow_redirects=True,
        )
        if response.status_code == 404:
            response.close()
            raise NotFoundError(f"blob {digest} not found in {self.location}")
        if offset and response.status_code == 206:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                response.close()
                raise StoreError(f"registry {self.registry}: {what}: wrong range in resumed GET")
            return response
        if response.status_code != 200:
            raise self._error(response, what)
        skip = offset
        while skip:  # the registry ignored Range: drop what was read already
            try:
                data = response.raw.read(min(skip, CHUNK), decode_content=True)
            except _READ_ERRORS as e:
                data = b""
                reason = describe_exception(e)
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
        if DIGEST_PATTERN.match(reference) and reference != digest:
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
        if response.status_code not in (200, 201):
            raise self._error(response, what)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise StoreError(
                f"registry {self.registry}: {what}: stored as {stored}, not {digest} "
                "(the registry changed the bytes)"
            )
        return digest

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        check_reference(reference)
        what = f"GET manifest {reference}"
        response = self._request(
            "GET",
            self._url("manifests", reference),
            self._pull,
            what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
            allow_redirects=True,
        )
        with response:
            if response.status_code == 404:
                raise NotFoundError(f"manifest {reference} not found in {self.location}")
            if response.status_code != 200:
                raise self._error(response, what)
            content = self._read_limited(response, MAX_MANIFEST, what)
        media_type = _media_type(response.headers.get("Content-Type"))
        declared = _declared_media_type(content)
        if media_type not in ALL_MANIFESTS and declared:
            media_type = declared
        elif declared and declared != media_type:
            raise StoreError(
                f"registry {self.registry}: {what}: served as {media_type} "
                f"but its mediaType is {declared}"
            )
        actual = sha256_digest(content)
        expected = reference if DIGEST_PATTERN.match(reference) else None
        expected = expected or response.headers.get("Docker-Content-Digest")
        if expected and DIGEST_PATTERN.match(expected) and actual != expected:
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
            allow_redirects=True,
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, what)
        digest = response.headers.get("Docker-Content-Digest", "")
        if DIGEST_PATTERN.match(digest):
            return digest
        try:  # a registry that omits the header: hash the manifest itself
            return sha256_digest(self.get_manifest(tag)[0])
        except NotFoundError:
            return None

    def list_tags(self) -> list[str]:
        """Follows ``Link: rel="next"`` pages (distribution 3 and most registries);
        distribution 2.8 sends everything at once, unsorted."""
        url: str | None = self._url("tags", "list")
        tags: list[str] = []
        seen: set[str] = set()
        first = True
        while url:
            if url in seen or len(seen) >= MAX_TAG_PAGES:
                raise StoreError(f"registry {self.registry}: tag listing does not end ({url})")
            seen.add(url)
            what = "list tags"
            response = self._request("GET", url, self._pull, what, allow_redirects=True)
            if response.status_code == 404 and first:
                return []
            if response.status_code != 200:
                raise self._error(response, what)
            try:
                page = response.json().get("tags") or []
            except (ValueError, AttributeError):
                raise StoreError(
                    f"registry {self.registry}: {what}: answer is not a tag list"
                ) from None
            tags.extend(t for t in page if isinstance(t, str))
            link = next_link(response.headers.get("Link"))
            url = urljoin(response.url, link) if link else None
            first = False
        return list(dict.fromkeys(tags))

    # -- HTTP ---------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        return f"{self._base_url()}/v2/{self.name}/" + "/".join(parts)

    def _base_url(self) -> str:
        if self._base is None:
            with self._base_lock:
                if self._base is None:
                    self._base = self._probe()
        return self._base

    def _probe(self) -> str:
        """Ping ``/v2/``: learn the scheme (HTTPS; with ``insecure``, plain HTTP when
        HTTPS fails, or first on loopback) and the auth challenge."""
        schemes = probe_schemes(self.registry, self.insecure)
        failure: StoreError | None = None
        for i, scheme in enumerate(schemes):
            base = f"{scheme}://{api_host(self.registry)}"
            last = i == len(schemes) - 1
            try:
                response = self._request(
                    "GET", base + "/v2/", frozenset(), "GET /v2/", retry=last, auth=False
                )
            except StoreError as e:
                if last:
                    raise
                log.debug(
                    "registry %s: %s failed (%s); trying the next scheme", self.registry, scheme, e
                )
                failure = e
                continue
            with response:
                if response.status_code == 401:
                    self.auth.observe(response)
                elif response.status_code != 200:
                    failure = StoreError(
                        f"registry {self.registry}: GET /v2/: {error_summary(response)} "
                        "(not an OCI distribution registry?)"
                    )
                    if last:
                        raise failure
                    continue  # plain HTTP to a TLS port answers 400
            if scheme == "http":
                log.info("registry %s: using plain HTTP (insecure)", self.registry)
            return base
        assert failure is not None
        raise failure

    def _request(
        self,
        method: str,
        url: str,
        scopes: frozenset[str],
        what: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | Callable[[], Any] | None = None,
        stream: bool = False,
        allow_redirects: bool = False,
        retry: bool = True,
        auth: bool = True,
    ) -> requests.Response:
        """One request with auth and retries. Returns any final response, whose
        status the caller judges; raises ``_Transient`` when transient failures
        outlast the tries, ``StoreError`` on other connection failures and on an
        authentication the registry keeps refusing. ``body`` may be a factory, called
        once per attempt, so a retried upload re-reads its source."""
        tries = self.policy.tries if retry else 1
        attempt = 0
        reauthenticated = False
        while True:
            sent_headers = dict(headers or {})
            authorization = self.auth.authorization(scopes) if auth else None
            if authorization:
                sent_headers["Authorization"] = authorization
            data = body() if callable(body) else body
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    headers=sent_headers,
                    data=data,
                    stream=stream,
                    allow_redirects=allow_redirects,
                    verify=self._verify,
                    timeout=TIMEOUT,
                )
            except requests.RequestException as e:
                reason = describe_exception(e)
                if isinstance(e, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY" in str(e):
                    raise StoreError(
                        f"registry {self.registry}: {what}: TLS certificate not trusted "
                        f"({reason}); add its CA to ca_certs or LOCAL_CA_CERTIFICATE"
                    ) from None
                message = f"registry {self.registry}: {what}: {reason}"
                if not is_transient_error(e):
                    raise StoreError(message) from None
                if attempt + 1 >= tries:
                    suffix = f" (gave up after {tries} tries)" if tries > 1 else ""
                    raise _Transient(message + suffix) from None
                delay = self.policy.delay(attempt)
                log.warning("%s; retrying in %.1f s (%d/%d)", message, delay, attempt + 1, tries)
                self.policy.sleep(delay)
                attempt += 1
                continue
            finally:
                close = getattr(data, "close", None)
                if close is not None:
                    close()
            if auth and response.status_code == 401:
                wider = (
                    None
                    if reauthenticated
                    else self.auth.unauthorized(response, scopes, authorization)
                )
                if wider is not None:
                    response.close()
                    scopes = wider
                    reauthenticated = True
                    continue
                error = self.auth.failure(response, what)
                response.close()
                raise error
            if is_transient(response):
                message = f"registry {self.registry}: {what}: {error_summary(response)}"
                if attempt + 1 >= tries:
                    response.close()
                    suffix = f" (gave up after {tries} tries)" if tries > 1 else ""
                    raise _Transient(message + suffix, response)
                delay = self.policy.delay(attempt, response)
                log.warning("%s; retrying in %.1f s (%d/%d)", message, delay, attempt + 1, tries)
                response.close()
                self.policy.sleep(delay)
                attempt += 1
                continue
            return response

    def _error(self, response: requests.Response, what: str) -> StoreError:
        summary = error_summary(response)
        response.close()
        cls = NotFoundError if response.status_code == 404 else StoreError
        return cls(f"registry {self.registry}: {what}: {summary}")

    def _read_limited(self, response: requests.Response, limit: int, what: str) -> bytes:
        out = bytearray()
        try:
            for chunk in response.iter_content(CHUNK):
                out += chunk
                if len(out) > limit:
                    raise StoreError(
                        f"registry {self.registry}: {what}: larger than {human(limit)}"
                    )
        except requests.RequestException as e:
            raise StoreError(f"registry {self.registry}: {what}: {describe_exception(e)}") from None
        return bytes(out)


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


_READ_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)


class _Download(io.RawIOBase):
    """The body of a blob GET as a stream. A connection dropped midway is resumed
    with a ``Range`` request from where it broke (a bounded number of times)."""

    def __init__(self, store: RegistryStore, digest: str, size: int | None) -> None:
        super().__init__()
        self._store = store
        self._digest = digest
        self._offset = 0
        self._resumes = 0
        self._response: requests.Response | None = store._get_blob(digest, 0)
        length = self._response.headers.get("Content-Length")
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
                data = self._response.raw.read(n, decode_content=True)
            except _READ_ERRORS as e:
                self._resume(e)
                continue
            if data:
                self._offset += len(data)
                self._progress.update(len(data))
                self._store.stats.add(bytes_pulled=len(data))
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
        reason = describe_exception(error)
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
