"""The protocol's edges, end to end: check ordering, failed builds, bad config,
null source, and debug tracebacks. Builds here are plain commands (no images)
so they run in well under a second each."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.concourse import Concourse

pytestmark = pytest.mark.e2e


def put_files(concourse: Concourse, source: dict, tmp: Path, **params) -> dict:
    sources = tmp / "put"
    (sources / "src").mkdir(parents=True, exist_ok=True)
    params = {
        "context": "src",
        "command": "mkdir -p release && echo $VERSION_NOTE > release/a.txt",
        **params,
    }
    result = concourse.put(source, params, sources)
    assert result.returncode == 0, result.stderr
    return result.json["version"]


def test_check_orders_semver_and_follows_the_cursor(concourse: Concourse, tmp_path: Path) -> None:
    source = {"repository": str(tmp_path / "store")}
    assert concourse.check(source) == []
    v = {
        tag: put_files(concourse, source, tmp_path, version=tag)
        for tag in ("1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0")
    }
    assert concourse.check(source) == [v["1.10.0"]]
    assert concourse.check(source, v["1.2.0-rc.1"]) == [v["1.2.0-rc.1"], v["1.2.0"], v["1.10.0"]]
    assert concourse.check(source, v["1.10.0"]) == [v["1.10.0"]]
    # A cursor whose tag is gone, or points elsewhere: the latest alone.
    moved = {"tag": "1.2.0", "digest": v["0.9.0"]["digest"]}
    assert concourse.check(source, moved) == [v["1.10.0"]]
    assert concourse.check(source, {"tag": "7.7.7", "digest": v["0.9.0"]["digest"]}) == [
        v["1.10.0"]
    ]
    # tag_regex narrows the versions; string order when not every tag is semver.
    assert concourse.check({**source, "tag_regex": r"^1\.2\."}) == [v["1.2.0"]]
    put_files(concourse, source, tmp_path, version="latest-build")
    assert concourse.check(source)[-1]["tag"] == "latest-build"


def test_default_tags_sort_in_time_order(concourse: Concourse, tmp_path: Path) -> None:
    source = {"repository": "file://" + str(tmp_path / "store")}
    first = put_files(concourse, source, tmp_path)
    assert len(first["tag"]) == len("20260101T000000Z")
    import time

    time.sleep(1.1)
    second = put_files(concourse, source, tmp_path)
    assert first["tag"] < second["tag"]
    assert concourse.check(source, first) == [first, second]


def test_version_file_and_existing_version(concourse: Concourse, tmp_path: Path) -> None:
    source = {"repository": str(tmp_path / "store")}
    (tmp_path / "put" / "version").mkdir(parents=True)
    (tmp_path / "put" / "version" / "number").write_text("3.1.4\n")
    v = put_files(concourse, source, tmp_path, version_file="version/number")
    assert v["tag"] == "3.1.4"
    again = concourse.put(
        source, {"context": "src", "command": "true", "version": "3.1.4"}, tmp_path / "put"
    )
    assert again.returncode == 1
    assert "version 3.1.4 already exists" in again.error_line
    assert concourse.check(source) == [v]


def test_failing_build_publishes_nothing(concourse: Concourse, tmp_path: Path) -> None:
    source = {"repository": str(tmp_path / "store")}
    sources = tmp_path / "put"
    (sources / "src").mkdir(parents=True)
    result = concourse.put(
        source,
        {
            "context": "src",
            "command": "mkdir -p release; echo built > release/x; echo oops >&2; exit 3",
        },
        sources,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "oops" in result.stderr
    assert result.error_line == (
        f"error: `mkdir -p release; echo built > release/x; echo oops >&2; exit 3` in "
        f"{sources / 'src'} failed with exit status 3; nothing was published"
    )
    assert concourse.check(source) == []


def test_build_output_goes_to_stderr_and_env_reaches_the_command(
    concourse: Concourse, tmp_path: Path
) -> None:
    source = {"repository": str(tmp_path / "store"), "env": {"A": "from-source", "B": "b"}}
    sources = tmp_path / "put"
    (sources / "src").mkdir(parents=True)
    command = (
        "echo to-stdout; mkdir -p out; "
        "echo $A $B $DOCKER $BUILDER $BUILD_JOB_NAME $BUILD_TEAM_NAME > out/env.txt"
    )
    result = concourse.put(
        source,
        {"context": "src", "command": command, "output": "out", "env": {"A": "from-params"}},
        sources,
    )
    assert result.returncode == 0, result.stderr
    assert "to-stdout" in result.stderr and "to-stdout" not in result.stdout
    assert (sources / "src" / "out" / "env.txt").read_text() == (
        "from-params b buildah buildah build main\n"
    )


@pytest.mark.parametrize(
    ("step", "request_", "expected"),
    [
        (
            "check",
            {"source": {"repositry": "/x"}},
            "error: source.repository: field required; source.repositry: unknown key",
        ),
        ("check", {"source": None}, "error: source.repository: field required"),
        ("out", {"source": {"repository": "/x"}}, "error: params.context: field required"),
        (
            "out",
            {
                "source": {"repository": "/x", "password": "pw-should-not-leak"},
                "params": {"context": "."},
            },
            "error: source: username and password go together",
        ),
        ("in", {"source": {"repository": "/x"}}, "error: version: field required"),
        (
            "in",
            {
                "source": {"repository": "/x"},
                "version": {"tag": "1", "digest": "sha256:0"},
                "params": {"format": "rar"},
            },
            "error: version.digest: does not match ^sha256:[0-9a-f]{64}$; "
            "params.format: input should be 'docker', 'oci' or 'oci-layout'",
        ),
    ],
)
def test_bad_configuration_is_one_line(
    concourse: Concourse, tmp_path: Path, step: str, request_: dict, expected: str
) -> None:
    result = concourse.run(step, request_, None if step == "check" else tmp_path / "dir")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == expected
    assert "Traceback" not in result.stderr
    assert "pw-should-not-leak" not in result.stderr


def test_debug_adds_a_traceback(concourse: Concourse, tmp_path: Path) -> None:
    request = {"source": {"repository": "relative/no-host-store", "debug": True}}
    plain = concourse.run(
        "in",
        {
            **request,
            "source": {"repository": "/nonexistent/store"},
            "version": {"tag": "1", "digest": "sha256:" + "1" * 64},
        },
        tmp_path / "a",
    )
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = concourse.run(
        "in",
        {
            "source": {"repository": "/nonexistent/store", "debug": True},
            "version": {"tag": "1", "digest": "sha256:" + "1" * 64},
        },
        tmp_path / "b",
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.error_line == plain.error_line
