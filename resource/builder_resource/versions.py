"""Version tags: the default tag, and the order check lists them in. Pure.

check imports this module on every run, so it imports nothing at load time, and
its functions read tags, digests and semantic versions by hand: ``re`` (with
``enum`` and friends) costs a check 14 ms to import, and compiling
``SEMVER_PATTERN`` 4 ms more. The patterns stay the reference: ``config.py``
validates tags and digests with them, and tests hold the readers to all three.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (check's path)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

#: A version's tag (the distribution spec's tag grammar) and digest. config.py's
#: ``Version`` model validates with these, and check's fast path reads them too.
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

#: Semantic versions (semver.org's pattern with ASCII digits, anchored at both ends,
#: and an optional leading ``v``): the reference :func:`parse_semver` is tested
#: against; it reads them without ``re``.
SEMVER_PATTERN = (
    r"\Av?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\Z"
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


_DIGITS = frozenset("0123456789")
_IDENTIFIER = _DIGITS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")


def _number(text: str) -> bool:
    """``0|[1-9][0-9]*``"""
    return text == "0" or (text != "" and text[0] != "0" and set(text) <= _DIGITS)


def _pre_release_part(text: str) -> bool:
    """A number, or ``[0-9A-Za-z-]+`` with a non-digit in it."""
    return _number(text) or (text != "" and set(text) <= _IDENTIFIER and not set(text) <= _DIGITS)


def parse_semver(tag: str) -> tuple[tuple[int, int, int], str | None] | None:
    """(major, minor, patch) and the pre-release of a semantic version (semver 2.0,
    with an optional leading ``v``), or None: what ``SEMVER_PATTERN`` matches, by
    hand. Checks run every minute; ``re`` and compiling the pattern cost them
    about 18 ms, a third of a check."""
    text = tag[1:] if tag.startswith("v") else tag
    text, plus, build = text.partition("+")
    if plus and not all(part and set(part) <= _IDENTIFIER for part in build.split(".")):
        return None
    text, dash, pre = text.partition("-")  # the core has no "-": the first one ends it
    if dash and not all(_pre_release_part(part) for part in pre.split(".")):
        return None
    core = text.split(".")
    if len(core) != 3 or not all(_number(part) for part in core):
        return None
    return (int(core[0]), int(core[1]), int(core[2])), (pre if dash else None)


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
    ``tag_regex`` is searched, not anchored, as registry-image-resource does."""
    if tag_regex:
        import re

        pattern = re.compile(tag_regex)
        chosen = sorted({t for t in tags if pattern.search(t)})
    else:
        chosen = sorted(set(tags))
    # A semantic version has two dots at least: tags without are settled cheaply.
    dotted = all(t.count(".") >= 2 for t in chosen)
    if chosen and dotted and all(parse_semver(t) for t in chosen):
        chosen.sort(key=lambda t: (semver_key(t), t))
    return chosen
