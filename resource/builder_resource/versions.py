"""Version tags: the default tag, and the order check lists them in. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

#: Semantic versions: semver.org's pattern with ASCII digits, anchored at both ends,
#: and an optional leading ``v``.
SEMVER_PATTERN = (
    r"\Av?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\Z"
)
_SEMVER = re.compile(SEMVER_PATTERN)
#: Tags that hold what is attached to a version, never versions themselves: the
#: referrers tag schema's ``sha256-<hex>`` (distribution-spec, "Referrers Tag
#: Schema") and cosign's ``sha256-<hex>.sig`` (and its ``.att``/``.sbom``).
ATTACHMENT_TAG = re.compile(r"\Asha256-[0-9a-f]{64}(\.[a-z]+)?\Z")


def parse_semver(tag: str) -> tuple[tuple[int, int, int], str | None] | None:
    """(major, minor, patch) and the pre-release of a semantic version (semver 2.0,
    with an optional leading ``v``), or None."""
    match = _SEMVER.match(tag)
    if match is None:
        return None
    major, minor, patch, pre, _build = match.groups()
    return (int(major), int(minor), int(patch)), pre


def default_tag(now: datetime, git_sha: str | None) -> str:
    """``YYYYMMDDTHHMMSSZ[-<short sha>]``: tags that sort in time order."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{git_sha[:7]}" if git_sha else stamp


def semver_key(tag: str) -> tuple:
    """A sort key following semver 2.0 precedence (build metadata ignored)."""
    parsed = parse_semver(tag)
    if parsed is None:
        raise ValueError(f"{tag} is not a semantic version")
    core, pre = parsed
    if pre is None:
        return (core, 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (core, 0, parts)


def order_tags(tags: Iterable[str], tag_regex: str | None = None) -> list[str]:
    """The tags that are versions, oldest first: semver order when every one is a
    semantic version, else plain string order (default tags sort by time).
    ``tag_regex`` is searched, not anchored, as registry-image-resource does.
    Attachment tags (:data:`ATTACHMENT_TAG`) are never versions."""
    tags = {t for t in tags if not ATTACHMENT_TAG.match(t)}
    if tag_regex:
        pattern = re.compile(tag_regex)
        chosen = sorted({t for t in tags if pattern.search(t)})
    else:
        chosen = sorted(tags)
    if chosen and all(parse_semver(t) for t in chosen):
        chosen.sort(key=lambda t: (semver_key(t), t))
    return chosen
