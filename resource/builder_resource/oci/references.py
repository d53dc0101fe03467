"""The grammar of tags and digests, in one place: the distribution spec's tag and
the only digest algorithm the resource reads or writes (sha256).

``config.py`` validates versions with these patterns, the stores refuse anything
else before it becomes part of a URL or a file name, and check reads cursors
with them.
"""

from __future__ import annotations

import re

TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

# fullmatch, because ``$`` would also accept a trailing newline.
_TAG = re.compile(TAG_PATTERN.strip("^$"))
_DIGEST = re.compile(DIGEST_PATTERN.strip("^$"))


def is_tag(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None
