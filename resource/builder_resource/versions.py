"""Version tags: the default tag, and the order check lists them in. Pure.

check imports this module on every run, so it imports nothing at load time: ``re``
(with ``enum`` and friends, milliseconds) is loaded when a pattern is first needed,
and most checks need none (:func:`is_tag`, :func:`is_digest`, and the two-dots test
before ``SEMVER``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (check's path)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime
    from typing import Any

#: A version's tag (the distribution spec's tag grammar) and digest. config.py's
#: ``Version`` model validates with these, and check's fast path reads them too.
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

SEMVER_PATTERN = (
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)

_TAG_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TAG_REST = _TAG_FIRST | {".", "-"}
_HEX = frozenset("0123456789abcdef")


def is_tag(text: str) -> bool:
    """Whether ``re.fullmatch(TAG_PATTERN, text)`` would match, without ``re``."""
    return 0 < len(text) <= 128 and text[0] in _TAG_FIRST and set(text) <= _TAG_REST


def is_digest(text: str) -> bool:
    """Whether ``re.fullmatch(DIGEST_PATTERN, text)`` would match, without ``re``."""
    return len(text) == 71 and text.startswith("sha256:") and set(text[7:]) <= _HEX


_semver = None


def semver() -> Any:
    """``SEMVER_PATTERN``, compiled on first use."""
    global _semver
    if _semver is None:
        import re

        _semver = re.compile(SEMVER_PATTERN)
    return _semver


def default_tag(now: datetime, git_sha: str | None) -> str:
    """``YYYYMMDDTHHMMSSZ[-<short sha>]``: tags that sort in time order."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{git_sha[:7]}" if git_sha else stamp


def semver_key(tag: str) -> tuple:
    """A sort key following semver 2.0 precedence (build metadata ignored)."""
    match = semver().match(tag)
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
    if tag_regex:
        import re

        pattern = re.compile(tag_regex)
        chosen = sorted({t for t in tags if pattern.search(t)})
    else:
        chosen = sorted(set(tags))
    # A semantic version has two dots at least: tags without are settled cheaply.
    dotted = all(t.count(".") >= 2 for t in chosen)
    if chosen and dotted and all(semver().match(t) for t in chosen):
        chosen.sort(key=lambda t: (semver_key(t), t))
    return chosen
