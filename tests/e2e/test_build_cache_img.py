"""The build cache with img, whose binary cannot be downloaded here: a stand-in
`img` on PATH records its arguments as img v0.5.11 would receive them, behind the
wrapper put installs. A TLS registry with a password (img speaks TLS only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.concourse import Concourse, clean_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FAKE_IMG = """#!/bin/sh
echo "$*" >> "$IMG_CALLS"
"""


def test_img_gets_the_registry_cache(
    concourse: Concourse, basic_registry, repo_name: str, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "img").write_text(FAKE_IMG)
    (bin_dir / "img").chmod(0o755)
    calls = tmp_path / "img-calls"
    path = clean_env(tmp_path, build=False)["PATH"]
    concourse.extra_env.update({"PATH": f"{bin_dir}:{path}", "IMG_CALLS": str(calls)})
    source = {
        "repository": f"{basic_registry.host}/{repo_name}",
        **basic_registry.client_options(),
        "builder": "img",
        "cache": True,
    }
    sources = tmp_path / "put"
    (sources / "src").mkdir(parents=True)
    command = "$DOCKER build -t localhost/app:1 . && img version && mkdir -p release"
    result = concourse.put(source, {"context": "src", "command": command}, sources)
    assert result.returncode == 0, result.stderr[-2000:]
    cache = f"{basic_registry.host}/{repo_name}-cache"
    assert calls.read_text().splitlines() == [
        f"build --cache-from {cache} --cache-to type=registry,ref={cache},mode=max "
        "-t localhost/app:1 .",
        "version",  # every other command passes through untouched
    ]
