"""Every path a put request names resolves inside `$1`, symlinks included, or the
put is refused in one line, builds nothing and publishes nothing: `params.context`
and `params.version_file` by `..`, by an absolute path and through a symlink (as
`output` already was). An error shows a version file's content only where it
could have been a tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.concourse import Concourse

pytestmark = pytest.mark.e2e

SECRET = "s3cret-token-do-not-print"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """`$1` = put/ (holding src/), and a folder beside it that a build must not reach."""
    sources, outside = tmp_path / "put", tmp_path / "outside"
    (sources / "src").mkdir(parents=True)
    outside.mkdir()
    (outside / "Makefile").write_text("release:\n\tmkdir -p release && touch release/escaped\n")
    (outside / "version").write_text(f"{SECRET}\nsecond line\n")
    (sources / "src" / "to-outside").symlink_to(outside)
    (sources / "version-link").symlink_to(outside / "version")
    return {"sources": sources, "outside": outside, "store": tmp_path / "store"}


def refused(concourse: Concourse, layout: dict[str, Path], field: str, **params) -> str:
    source = {"repository": str(layout["store"])}
    params = {"context": "src", "command": "mkdir -p release && touch release/built", **params}
    result = concourse.put(source, params, layout["sources"])
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {field}: "), result.stderr
    assert SECRET not in result.stderr
    assert not (layout["outside"] / "release").exists()  # nothing built out there
    assert not (layout["sources"] / "src" / "release").exists()  # nor here
    assert concourse.check(source) == []  # nothing published
    return errors[0]


@pytest.mark.parametrize(
    "context",
    ["../outside", "src/../../outside", "ABSOLUTE", "src/to-outside", "src/to-outside/."],
)
def test_a_context_outside_is_refused(concourse: Concourse, layout, context: str) -> None:
    if context == "ABSOLUTE":
        context = str(layout["outside"])
    line = refused(concourse, layout, "params.context", context=context, command=None)
    assert "outside the put's directory" in line


@pytest.mark.parametrize(
    "version_file", ["/etc/passwd", "../outside/version", "version-link", "src/to-outside/version"]
)
def test_a_version_file_outside_is_refused(concourse: Concourse, layout, version_file) -> None:
    line = refused(concourse, layout, "params.version_file", version_file=version_file)
    assert "outside the put's directory" in line
    assert "root:" not in line


def test_a_version_file_inside_is_quoted_only_where_it_could_be_a_tag(
    concourse: Concourse, layout
) -> None:
    (layout["sources"] / "notes").write_text(f"{SECRET}\nmore\n")
    line = refused(concourse, layout, "params.version_file", version_file="notes")
    assert line.endswith(
        f"holds 2 lines, {len(SECRET) + len(chr(10) + 'more')} characters, not a valid tag"
    )
    (layout["sources"] / "bad-tag").write_text("not a tag!\n")
    line = refused(concourse, layout, "params.version_file", version_file="bad-tag")
    assert line.endswith("holds 'not a tag!', not a valid tag")


def test_paths_inside_through_symlinks_are_fine(concourse: Concourse, layout) -> None:
    sources = layout["sources"]
    (sources / "real-version").write_text("2.0.0\n")
    (sources / "version-inside").symlink_to("real-version")
    (sources / "src-link").symlink_to("src")
    source = {"repository": str(layout["store"])}
    params = {
        "context": "src-link",
        "command": "mkdir -p release && touch release/built",
        "version_file": "version-inside",
    }
    result = concourse.put(source, params, sources)
    assert result.returncode == 0, result.stderr
    assert result.json["version"]["tag"] == "2.0.0"
