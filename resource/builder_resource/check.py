"""check: list versions, oldest first. Orchestration only.

Cost: one tag listing, plus one manifest HEAD per version returned.

:func:`run` is the full path (pydantic models, the stores). ``fastcheck.py`` is the
process entry of ``opt/resource/check``: it answers the common case with a light
client and falls back to :func:`run` for anything else. Both choose versions with
:func:`select_versions`, so they cannot disagree on which versions to return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: (tag, digest) of the version Concourse last saw.
Cursor = tuple[str, str]


def run(payload: Any, env: dict[str, str]) -> list[dict[str, str]]:
    # Imported here: the fast path imports this module and must not pay for pydantic.
    from .config import CheckRequest, parse_request
    from .store import open_store
    from .versions import order_tags

    request = parse_request(CheckRequest, payload)
    store = open_store(**request.source.store_settings(), env=env)
    tags = order_tags(store.list_tags(), request.source.tag_regex)
    version = request.version
    cursor = None if version is None else (version.tag, version.digest)
    versions = select_versions(tags, cursor, store.resolve_tag)
    if request.source.verify_keys:
        from .attesting import signed_versions, verifier_for

        verifier = verifier_for(request.source)
        assert verifier is not None
        versions = signed_versions(store, versions, verifier)
    return versions


def select_versions(
    tags: Sequence[str], cursor: Cursor | None, resolve: Callable[[str], str | None]
) -> list[dict[str, str]]:
    """The versions to report, given the ordered ``tags`` and a way to resolve a tag
    to its digest (None when it is gone): from the cursor on when it is still where
    Concourse saw it, else the latest alone."""
    if not tags:
        return []
    if cursor is not None and cursor[0] in tags and resolve(cursor[0]) == cursor[1]:
        versions = [{"tag": cursor[0], "digest": cursor[1]}]
        for tag in tags[tags.index(cursor[0]) + 1 :]:
            digest = resolve(tag)
            if digest is not None:
                versions.append({"tag": tag, "digest": digest})
        return versions
    # No cursor, or it is gone or was moved: the latest alone.
    for tag in reversed(tags):
        digest = resolve(tag)
        if digest is not None:
            return [{"tag": tag, "digest": digest}]
    return []
