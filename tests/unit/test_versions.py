"""Tag ordering and the default tag."""

from __future__ import annotations

from datetime import UTC, datetime

from builder_resource.build.git import strip_credentials
from builder_resource.versions import default_tag, order_tags


def test_semver_precedence() -> None:
    tags = [
        "1.0.0",
        "1.0.0-rc.1",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.11",
        "1.0.0-beta.2",
        "1.0.0-beta",
        "0.9.12",
        "1.10.0",
        "1.2.0",
    ]
    assert order_tags(tags) == [
        "0.9.12",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "1.10.0",
    ]


def test_string_order_when_not_all_semver_and_regex() -> None:
    assert order_tags(["b", "1.10.0", "1.2.0", "a"]) == ["1.10.0", "1.2.0", "a", "b"]
    assert order_tags(["1.2.0", "1.10.0", "latest"], r"^\d") == ["1.2.0", "1.10.0"]
    assert order_tags([]) == []


def test_default_tag_sorts_by_time() -> None:
    early = default_tag(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "0123456789abcdef")
    late = default_tag(datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC), None)
    assert early == "20260102T030405Z-0123456"
    assert late == "20261102T030405Z"
    assert order_tags([late, early]) == [early, late]


def test_credentials_are_stripped_from_sources() -> None:
    assert strip_credentials("https://user:tok@github.com/a/b.git") == "https://github.com/a/b.git"
    assert strip_credentials("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert strip_credentials("https://github.com/a/b") == "https://github.com/a/b"
