"""kill -9 at random moments of put, to a registry and to a layout: every tag left
visible is a complete version that get gives back, and the next put succeeds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fixtures.concourse import SCRIPTS, Concourse, clean_env, go_json
from fixtures.projects import image_project

from .conftest import FIGURES, SCALE, SEED
from .invariants import assert_every_layout_tag_complete, assert_every_tag_complete

pytestmark = pytest.mark.integration


def killed_put(concourse: Concourse, source: dict, params: dict, sources: Path, after: float):
    """Start a put as Concourse would and SIGKILL its whole process group after
    ``after`` seconds (or let it finish first). Returns its exit status."""
    process = subprocess.Popen(
        [str(SCRIPTS / "out"), str(sources)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=sources,
        env=clean_env(concourse.home, build=True),
        start_new_session=True,
    )
    process.stdin.write(go_json({"source": source, "params": params}))
    process.stdin.close()
    try:
        return process.wait(after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def timed_put(concourse: Concourse, source: dict, params: dict, sources: Path) -> float:
    started = time.monotonic()
    result = concourse.put(source, params, sources)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


@pytest.mark.parametrize("store", ["registry", "layout"])
def test_kill_nine_leaves_no_half_version(
    store: str, concourse: Concourse, registry, repo_name: str, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-{store}")
    if store == "registry":
        source = {"repository": f"{registry.host}/{repo_name}", "insecure": True}

        def complete() -> int:
            return assert_every_tag_complete(f"http://{registry.host}", repo_name)
    else:
        root = tmp_path / "store"
        source = {"repository": str(root)}

        def complete() -> int:
            return assert_every_layout_tag_complete(root)

    sources = tmp_path / "put"
    command = image_project(sources)
    params = {"context": "src", "command": command}
    duration = timed_put(concourse, source, {**params, "version": "0.0.0"}, sources)
    params = dict(params)
    for round_ in range(5 * SCALE):
        after = rng.uniform(0.05, duration * 1.1)
        params["version"] = f"1.0.{round_}"
        status = killed_put(concourse, source, params, sources, after)
        FIGURES[f"puts killed with -9 ({store})"] += status != 0
        # Every visible version is complete (a partial one fails here), and the
        # newest is gettable through the resource.
        FIGURES[f"versions verified complete after a kill ({store})"] += complete()
        latest = concourse.check(source)[-1]
        got = concourse.get(source, latest, None, tmp_path / f"get-{round_}")
        assert got.returncode == 0, got.stderr
    # The next put succeeds.
    params["version"] = "2.0.0"
    timed_put(concourse, source, params, sources)
    complete()
