"""The benchmark harness (bench/, ``make bench``) runs end to end in its smoke
mode: a tiny image, one pair per measure, every measure printed. No timing is
asserted: the figures of a smoke run mean nothing, only that they are produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.tools import require

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROW_IDS = (
    "put_fresh",
    "put_again",
    "put_fresh_no_sbom",
    "get_docker",
    "get_rootfs",
    "apply_layers",
    "check",
    "rss_put_small",
    "rss_put_large",
    "rss_get_small",
    "rss_get_large",
    "compress",
    "gzip_alone",
    "cache_warm",
    "cache_last_layer",
)


def test_bench_smoke_runs_every_measure(tmp_path: Path) -> None:
    if not (ROOT / "bench").is_dir():
        pytest.skip("no bench/ here (the image's test stage leaves it out)")
    require("skopeo", "umoci", "docker-registry", "tar", "buildah")
    if not os.access("/usr/bin/time", os.X_OK):
        pytest.skip("GNU time (/usr/bin/time) is missing: apt-get install time")
    results = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--python",
            sys.executable,  # has the dependencies: no venv to build in a test
            "--bench-dir",
            str(tmp_path / "bench"),
            "--json",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    table_ids = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    for row_id in ROW_IDS:
        assert row_id in table_ids, f"no row {row_id} in:\n{done.stdout[-3000:]}"

    rows = {row["id"]: row for row in json.loads(results.read_text())["rows"]}
    assert set(rows) == set(ROW_IDS)
    for row_id, row in rows.items():
        assert row["error"] is None, (row_id, row["error"])
        assert row["resource"] is not None, row_id
        assert row["result"] in ("PASS", "FAIL", "info"), row
    assert "the same" in rows["compress"]["note"]  # one manifest digest on every run
    assert not (tmp_path / "bench" / "work").exists()  # registries and outputs cleaned up
