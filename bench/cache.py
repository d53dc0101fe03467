"""The build cache (``source.cache``), measured: a put on a fresh worker with the
cache in the registry against a cold put, of a project whose Dockerfile has one
expensive RUN step (hashing GiBs, ≥ 10 s here) and a cheap last layer.

Every put runs with an empty builder storage of its own, as on a new worker; the
cold put also has an empty cache (a fresh registry). Each round runs cold, warm and
changed in that order (the warm puts need the cold one's cache), and gives:
- ``cache_warm``: the same project again, ratio warm ÷ cold (target ≤ 0.3);
- ``cache_last_layer``: only the last layer changed (target ≤ 0.3, and exactly
  that one step rebuilt, read from buildah's log).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .measures import Bench, ratios
from .procs import Timed
from .report import Row, median

PULLED = "Cache pulled from remote"
STEPS = 3  # COPY busybox, the expensive RUN, COPY note.txt


def dockerfile(mib: int) -> str:
    work = (
        f"/bin/busybox dd if=/dev/zero bs=1M count={mib} 2>/dev/null "
        "| /bin/busybox sha256sum > /sum"
    )
    return (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        f'RUN ["/bin/busybox", "sh", "-c", "{work}"]\n'
        "COPY note.txt /note.txt\n"
    )


def project(sources: Path, mib: int, note: str) -> None:
    src = sources / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "Dockerfile").write_text(dockerfile(mib))
    (src / "note.txt").write_text(note + "\n")
    shutil.copy(shutil.which("busybox") or "/bin/busybox", src / "busybox")


def fresh_worker(bench: Bench) -> dict[str, str]:
    """An empty builder storage, as on a worker that never built."""
    root = bench.scratch("worker")
    root.mkdir(parents=True)
    conf = root / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    return {"CONTAINERS_STORAGE_CONF": str(conf)}


def put(bench: Bench, source: dict[str, Any], tag: str, mib: int, note: str) -> Timed:
    sources = bench.scratch("put")
    project(sources, mib, note)
    request = {
        "source": {**source, "cache": True, "images": ["localhost/bench-cache:1"]},
        "params": {
            "context": "src",
            "version": tag,
            "command": "$DOCKER build -t localhost/bench-cache:1 .",
        },
    }
    bench.settle()
    return bench.resource.run("out", request, sources, extra_env=fresh_worker(bench))


def measure_cache(bench: Bench, mib: int) -> list[Row]:
    """The two rows, from ``bench.pairs`` rounds of cold put, warm put, changed put."""
    rounds: list[tuple[Timed, Timed, Timed]] = []
    for i in range(bench.pairs):
        registry = bench.registry()
        source = bench.source(registry)
        try:
            cold = put(bench, source, f"1.{i}.0", mib, "one")
            warm = put(bench, source, f"1.{i}.1", mib, "one")
            changed = put(bench, source, f"1.{i}.2", mib, f"two-{i}")
        finally:
            bench.drop(registry)
        rounds.append((cold, warm, changed))
    rows = []
    for row_id, label, index, reused in (
        ("cache_warm", "put on a fresh worker, cache in the registry, vs cold", 1, STEPS),
        ("cache_last_layer", "the same, last layer changed, vs cold", 2, STEPS - 1),
    ):
        pairs = [(r[index].wall, r[0].wall) for r in rounds]
        reuse = [r[index].stderr.count(PULLED) for r in rounds]
        row = Row(
            row_id,
            label,
            "s",
            "ratio ≤ 0.3",
            resource=median([x for x, _ in pairs]),
            peer=median([y for _, y in pairs]),
            ratio=ratios(pairs),
            samples=len(pairs),
            pairs=pairs,
            note=f"steps taken from the cache per put: {reuse} (of {STEPS}); "
            f"the expensive step hashes {mib} MiB",
        )
        row.passed = row.ratio is not None and row.ratio <= 0.3 and set(reuse) == {reused}
        rows.append(row)
    return rows
