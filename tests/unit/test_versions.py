"""Tag ordering and the default tag."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest

from builder_resource.building.git import strip_credentials
from builder_resource.versions import SEMVER_PATTERN, default_tag, order_tags, parse_semver


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


SEMVER_CASES = [
    # semver.org's lists of valid and invalid versions (a selection), and our "v"
    "0.0.4",
    "1.2.3",
    "10.20.30",
    "1.1.2-prerelease+meta",
    "1.1.2+meta",
    "1.1.2+meta-valid",
    "1.0.0-alpha",
    "1.0.0-beta",
    "1.0.0-alpha.beta",
    "1.0.0-alpha.beta.1",
    "1.0.0-alpha.1",
    "1.0.0-alpha0.valid",
    "1.0.0-alpha.0valid",
    "1.0.0-rc.1+build.1",
    "2.0.0-rc.1+build.123",
    "1.2.3-beta",
    "10.2.3-DEV-SNAPSHOT",
    "1.2.3-SNAPSHOT-123",
    "2.0.0+build.1848",
    "2.0.1-alpha.1227",
    "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
    "1.0.0-0A.is.legal",
    "99999999999999999999999.999999999999999999.99999999999999999",
    "v1.2.3",
    "v0.0.0-0",
    "1",
    "1.2",
    "1.2.3-0123",
    "1.2.3-0123.0123",
    "1.1.2+.123",
    "+invalid",
    "-invalid",
    "-invalid+invalid",
    "-invalid.01",
    "alpha",
    "alpha.beta",
    "alpha.beta.1",
    "alpha.1",
    "alpha+beta",
    "alpha_beta",
    "alpha.",
    "alpha..",
    "beta",
    "1.0.0-alpha_beta",
    "-alpha.",
    "1.0.0-alpha..",
    "1.0.0-alpha..1",
    "1.0.0-alpha...1",
    "01.1.1",
    "1.01.1",
    "1.1.01",
    "1.2.3.DEV",
    "1.2-SNAPSHOT",
    "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788",
    "1.2-RC-SNAPSHOT",
    "-1.0.3-gamma+b7718",
    "+justmeta",
    "9.8.7+meta+meta",
    "9.8.7-whatever+meta+meta",
    "vv1.2.3",
    "v",
    "V1.2.3",
    "1.2.3\n",
    "1.2.3-",
    "1.2.3+",
    "1.2.3-a.",
    "1.2.3+a.",
    "١.2.3",
    "1.0.0-x.7.z.92",
    "1.0.0-00",
    "1.0.0-0",
    "1.0.0--",
    "1.0.0-a-+-",
]


SEMVER = re.compile(SEMVER_PATTERN)


def _by_pattern(tag: str) -> tuple | None:
    match = SEMVER.match(tag)
    if match is None:
        return None
    major, minor, patch, pre, _build = match.groups()
    return (int(major), int(minor), int(patch)), pre


@pytest.mark.parametrize("tag", SEMVER_CASES)
def test_parse_semver_reads_what_the_pattern_matches(tag: str) -> None:
    assert parse_semver(tag) == _by_pattern(tag)


def test_parse_semver_agrees_with_the_pattern_on_random_tags() -> None:
    rng = random.Random(6)
    alphabet = "0019aZ-.+v"
    tags = {"".join(rng.choices(alphabet, k=rng.randint(0, 14))) for _ in range(30000)}
    # grown from valid cores, so that the pre-release and build parts are reached
    tags |= {f"{rng.choice(['1.2.3', 'v0.0.1', '10.0.0'])}{t}" for t in list(tags)[:10000]}
    valid = 0
    for tag in tags:
        expected = _by_pattern(tag)
        assert parse_semver(tag) == expected, tag
        valid += expected is not None
    assert valid > 1000  # the comparison reached the interesting cases


def test_attachment_tags_are_never_versions() -> None:
    """The referrers tag schema's ``sha256-<hex>`` and cosign's ``.sig`` hold what is
    attached to a version (issue 14): check must not report them."""
    hex64 = "ab" * 32
    tags = ["1.0.0", f"sha256-{hex64}", f"sha256-{hex64}.sig", "1.1.0"]
    assert order_tags(tags) == ["1.0.0", "1.1.0"]
    assert order_tags(tags, tag_regex=".") == ["1.0.0", "1.1.0"]
    # a tag that merely starts alike is still a version
    assert order_tags(["sha256-abc", "sha256-x"]) == ["sha256-abc", "sha256-x"]
