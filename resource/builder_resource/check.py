"""check: list versions, oldest first. Orchestration only.

Cost: one tag listing, plus one manifest HEAD per version returned.
"""

from __future__ import annotations

from typing import Any

from .config import CheckRequest, parse_request
from .stores import store_for
from .versions import order_tags


def run(payload: Any, env: dict[str, str]) -> list[dict[str, str]]:
    request = parse_request(CheckRequest, payload)
    store = store_for(request.source, env)
    tags = order_tags(store.list_tags(), request.source.tag_regex)
    if not tags:
        return []
    cursor = request.version
    if (
        cursor is not None
        and cursor.tag in tags
        and store.resolve_tag(cursor.tag) == cursor.digest
    ):
        versions = [cursor.to_json()]
        for tag in tags[tags.index(cursor.tag) + 1 :]:
            digest = store.resolve_tag(tag)
            if digest is not None:
                versions.append({"tag": tag, "digest": digest})
        return versions
    # No cursor, or it is gone or was moved: the latest alone.
    for tag in reversed(tags):
        digest = store.resolve_tag(tag)
        if digest is not None:
            return [{"tag": tag, "digest": digest}]
    return []
