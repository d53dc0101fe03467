"""A registry store that asks the light client first and builds the full one only
when it must.

A put whose blobs the registry already has (the same image pushed again, a
release whose images did not change) needs a few ``HEAD``s and manifest ``PUT``s.
The light client (``light.py``) makes those without requests, whose import alone
took 120–190 ms of a 0.6 s put on the benchmark machine. Anything the light
client is unsure of goes to :class:`~.registry.RegistryStore`, built on first
need, and from then on everything does: its answers, retries and error messages
are the contract, and a failed light attempt is always safe to repeat (a ``HEAD``,
or an idempotent ``PUT`` of the same bytes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from ..oci.blobs import BlobSource
from .light import LightRegistry, Unsure

if TYPE_CHECKING:
    from .http import RetryPolicy
    from .registry import RegistryStore

log = logging.getLogger("builder_resource.store")

T = TypeVar("T")


class LightFirstRegistry:
    """The :class:`~.base.Store` of one repository of a registry, light client
    first. Thread-safe: the light client is used by one thread at a time."""

    def __init__(
        self,
        repository: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
        ca_certs: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        """``env``: the process environment (the light client must see what requests
        sees); ``policy``: the full client's retries."""
        self.repository = repository
        self._policy = policy
        self._username, self._password = username, password
        self._insecure, self._ca_certs = insecure, list(ca_certs)
        self._full: RegistryStore | None = None
        self._full_lock = threading.Lock()
        self._light_lock = threading.Lock()
        self._light: LightRegistry | None = None
        self._noted = 0
        try:
            self._light = LightRegistry(
                repository,
                username=username,
                password=password,
                insecure=insecure,
                ca_certs=self._ca_certs,
                env=env,
            )
        except Unsure as e:
            log.debug("%s: the full registry client from the start (%s)", repository, e)
        if self._light is None:
            self.location = self.full.location  # its errors, for a bad repository
        else:
            self.location = f"{self._light.registry}/{self._light.name}"

    @property
    def full(self) -> RegistryStore:
        """The full client, built on first use (this imports requests)."""
        with self._full_lock:
            if self._full is None:
                from .registry import RegistryStore

                self._full = RegistryStore(
                    self.repository,
                    username=self._username,
                    password=self._password,
                    insecure=self._insecure,
                    ca_certs=self._ca_certs,
                    policy=self._policy,
                )
            return self._full

    @property
    def full_built(self) -> bool:
        """Whether the full client was needed (and requests imported) so far."""
        return self._full is not None

    @property
    def light_in_use(self) -> bool:
        """Whether the light client still answers (no surprise so far)."""
        return self._light is not None

    def close(self) -> None:
        with self._light_lock:
            if self._light is not None:
                self._light.close()
        if self._full is not None:
            self._full.close()

    # -- the Store interface -------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        return self._either(
            lambda light: light.blob_exists(digest), lambda: self.full.blob_exists(digest)
        )

    def push_blob(self, blob: BlobSource, mount_from: str | None = None) -> None:
        """The light client's ``HEAD`` first: a blob that is there is not pushed. A
        missing one is pushed (and ``HEAD``-ed again) by the full client."""
        if self._attempt(lambda light: light.blob_exists(blob.digest)) is True:
            log.debug("%s: blob %s already present", self.location, blob.digest)
            return
        self.full.push_blob(blob, mount_from)

    def push_manifest(self, content: bytes, media_type: str, reference: str) -> str:
        return self._either(
            lambda light: light.push_manifest(content, media_type, reference),
            lambda: self.full.push_manifest(content, media_type, reference),
        )

    def resolve_tag(self, tag: str) -> str | None:
        return self._either(
            lambda light: light.resolve_tag(tag), lambda: self.full.resolve_tag(tag)
        )

    def list_tags(self) -> list[str]:
        return self._either(lambda light: light.list_tags(), lambda: self.full.list_tags())

    def get_manifest(self, reference: str) -> tuple[bytes, str]:
        return self.full.get_manifest(reference)

    @contextmanager
    def open_blob(self, digest: str, size: int | None = None) -> Iterator[BinaryIO]:
        with self.full.open_blob(digest, size) as stream:
            yield stream

    # -- internals ---------------------------------------------------------------------

    def _either(self, light: Callable[[LightRegistry], T], full: Callable[[], T]) -> T:
        answer = self._attempt(light)
        return full() if answer is _UNANSWERED else answer  # type: ignore[return-value]

    def _attempt(self, operation: Callable[[LightRegistry], T]) -> T | object:
        """The light client's answer, or ``_UNANSWERED`` once it is (or was) unsure."""
        with self._light_lock:
            if self._light is None:
                return _UNANSWERED
            try:
                answer = operation(self._light)
            except Unsure as e:
                log.debug("%s: the full registry client from here on (%s)", self.location, e)
                self._light.close()
                self._light = None
                return _UNANSWERED
            for note in self._light.notes[self._noted :]:
                log.info("%s", note)  # what the full client would have logged
            self._noted = len(self._light.notes)
            return answer


_UNANSWERED = object()
