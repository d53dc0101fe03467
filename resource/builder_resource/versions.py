"""Version tags: the default tag, and the order check lists them in. Pure."""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (check's path)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

#: A version's tag (the distribution spec's tag grammar) and digest. config.py's
#: ``Version`` model validates with these, and check's fast path reads them too.
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


def default_tag(now: datetime, git_sha: str | None) -> str:
    """``YYYYMMDDTHHMMSSZ[-<short sha>]``: tags that sort in time order."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{git_sha[:7]}" if git_sha else stamp


def semver_key(tag: str) -> tuple:
    """A sort key following semver 2.0 precedence (build metadata ignored)."""
    match = SEMVER.match(tag)
    if not match:
        raise ValueError(f"{tag} is not a semantic version")
    major, minor, patch, pre, _build = match.groups()
    core = (int(major), int(minor), int(patch))
    if pre is None:
        return (core, 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (core, 0, parts)


def order_tags(tags: Iterable[str], tag_regex: str | None = None) -> list[str]:
    """The tags that are versions, oldest first: semver order when every one is a
    semantic version, else plain string order (default tags sort by time).
    ``tag_regex`` is searched, not anchored, as registry-image-resource does."""
    pattern = re.compile(tag_regex) if tag_regex else None
    chosen = sorted({t for t in tags if pattern is None or pattern.search(t)})
    if chosen and all(SEMVER.match(t) for t in chosen):
        chosen.sort(key=lambda t: (semver_key(t), t))
    return chosen
