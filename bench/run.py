"""``python3 -m bench.run``: the resource against skopeo and umoci, side by side.

    make bench                                  # about 400 MiB image, 3 pairs
    make bench BENCH_ARGS='--pairs 5 --size-mib 200'
    make bench-smoke                            # tiny image, 1 pair: does it all run?
    python3 -m bench.run --only put,check       # some measures only

The resource runs through ``opt/resource/*`` as Concourse runs it, with the
Python of a virtualenv like the resource image's (``.bench/venv``, created on
first use; ``--python`` picks another). Images are generated once and cached
under ``.bench/images``; registries and outputs live in ``.bench/work`` and are
removed at the end. Results go to stdout, ``.bench/results.json`` and
``.bench/results.md``. Exit status 1 when a measure could not run (``--strict``:
also when one misses its target).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from . import image as images
from .cache import measure_cache
from .measures import Bench
from .procs import ROOT, Resource, StepFailed, ensure_venv, python_description, remove_tree
from .report import (
    Row,
    describe_machine,
    load_average,
    markdown_table,
    text_table,
    write_results,
)

GROUPS = ("put", "get", "rootfs", "apply", "check", "rss", "compress", "cache")
#: the rows each group prints, in order (the smoke test checks them all)
ROW_IDS = {
    "put": ("put_fresh", "put_again", "put_fresh_no_sbom"),
    "get": ("get_docker",),
    "rootfs": ("get_rootfs",),
    "apply": ("apply_layers",),
    "check": ("check",),
    "rss": ("rss_put_small", "rss_put_large", "rss_get_small", "rss_get_large"),
    "compress": ("compress", "gzip_alone"),
    "cache": ("cache_warm", "cache_last_layer"),
}
LABELS = {
    "put_fresh": "put into a fresh registry vs skopeo copy oci-archive:",
    "put_again": "put again, every blob there, vs skopeo re-push",
    "put_fresh_no_sbom": "the same fresh put with sbom: false vs skopeo copy",
    "get_docker": "get format: docker vs skopeo copy docker:// docker-archive:",
    "get_rootfs": "get rootfs: true vs skopeo copy oci: + umoci unpack",
    "apply_layers": "apply_layers alone vs tar -xzf of the same layers",
    "check": "check, cursor at the newest tag, vs skopeo list-tags",
    "rss_put_small": "peak RSS, put of the small layer",
    "rss_put_large": "peak RSS, put of the large layer",
    "rss_get_small": "peak RSS, get of the small layer",
    "rss_get_large": "peak RSS, get of the large layer",
    "compress": "put of a docker-archive: gzip throughput",
    "gzip_alone": "the resource's gzip_writer alone",
    "cache_warm": "put on a fresh worker with the build cache vs a cold put",
    "cache_last_layer": "the same, only the last layer changed, vs a cold put",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per measure (default 3)")
    parser.add_argument(
        "--size-mib",
        type=float,
        default=400,
        help="size of the four-layer image, uncompressed (default 400)",
    )
    parser.add_argument(
        "--small-files",
        type=int,
        default=3000,
        help="files in its small-files layer (default 3000)",
    )
    parser.add_argument(
        "--rss-mib",
        default="100,1024",
        help="the small and the large layer of the memory measure (default 100,1024)",
    )
    parser.add_argument("--tags", type=int, default=200, help="tags for the check measure")
    parser.add_argument(
        "--check-runs",
        type=int,
        default=10,
        help="check runs (pairs with skopeo list-tags; default 10)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny image, 1 pair, 1 check run: does every measure run?",
    )
    parser.add_argument(
        "--only", default=",".join(GROUPS), help=f"measure groups to run, of {','.join(GROUPS)}"
    )
    parser.add_argument("--python", help="the resource's Python (default: the .bench/venv one)")
    parser.add_argument(
        "--bench-dir",
        type=Path,
        default=ROOT / ".bench",
        help="where the venv, cached images, scratch and results go",
    )
    parser.add_argument("--cache", type=Path, help="cached images (default BENCH_DIR/images)")
    parser.add_argument("--json", type=Path, help="results (default BENCH_DIR/results.json)")
    parser.add_argument("--keep-work", action="store_true", help="leave BENCH_DIR/work behind")
    parser.add_argument(
        "--clean", action="store_true", help="also remove the cached images at the end"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs = 1
        args.size_mib = 2
        args.small_files = 100
        args.rss_mib = "2,8"
        args.check_runs = 1
    unknown = set(args.only.split(",")) - set(GROUPS)
    if unknown:
        parser.error(f"--only: unknown group(s) {', '.join(sorted(unknown))}")
    if args.pairs < 1:
        parser.error("--pairs: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    bench_dir: Path = args.bench_dir.resolve()
    cache = (args.cache or bench_dir / "images").resolve()
    work = bench_dir / "work"
    results = (args.json or bench_dir / "results.json").resolve()
    groups = [g for g in GROUPS if g in args.only.split(",")]

    def log(message: str) -> None:
        print(message, flush=True)

    python = args.python or str(ensure_venv(bench_dir / "venv", log))
    machine = describe_machine(python_description(python))
    settings = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "pairs": args.pairs,
        "size_mib": args.size_mib,
        "small_files": args.small_files,
        "rss_mib": args.rss_mib,
        "tags": args.tags,
        "check_runs": args.check_runs,
        "smoke": args.smoke,
        "groups": groups,
    }
    for line in machine.lines():
        log(line)
    log(f"settings: {settings}")

    rss_small, rss_large = (float(x) for x in args.rss_mib.split(","))
    main_spec = images.main_image(args.size_mib, args.small_files)
    main_image = images.ensure(main_spec, cache, log)
    log(
        f"image: {len(main_spec.layers)} layers, {main_image.uncompressed_mib:.1f} MiB "
        f"uncompressed, {main_image.compressed_mib:.1f} MiB gzip ({images.GZIP_BACKEND})"
    )

    remove_tree(work)
    work.mkdir(parents=True)
    resource = Resource(python, work / "home", work / "tmp")
    bench = Bench(work, resource, args.pairs, log, sync=not args.smoke)
    rows: list[Row] = []

    def group(name: str, measure: Callable[[], list[Row]]) -> None:
        if name not in groups:
            return
        log(f"== {name} (load {load_average()})")
        begin = time.monotonic()
        try:
            measured = measure()
            rows.extend(measured)
            for row in measured:
                if row.pairs:
                    values = ", ".join(f"{_num(x)}/{_num(y)}" for x, y in row.pairs)
                    unit = "ms" if row.unit == "ms" else "s"  # pairs are wall times
                    log(f"  {row.id} pairs (resource/peer wall, {unit}): {values}")
        except (StepFailed, RuntimeError, OSError, ValueError, KeyError) as e:
            log(f"  {name}: ERROR {e}")
            for row_id in ROW_IDS[name]:
                rows.append(Row(row_id, LABELS[row_id], "s", "", error=str(e).splitlines()[0]))
        log(f"  {name}: {time.monotonic() - begin:.0f} s")

    try:
        published = None

        def put() -> list[Row]:
            nonlocal published
            put_rows, published = bench.measure_put(main_image)
            return put_rows

        def needs_version() -> None:
            nonlocal published
            if published is None:
                registry = bench.registry()
                _, published = bench.put(registry, main_image.oci_archive, "1.0.0")

        def get() -> list[Row]:
            needs_version()
            return [bench.measure_get_docker(published)]  # type: ignore[arg-type]

        def rootfs() -> list[Row]:
            needs_version()
            return [bench.measure_get_rootfs(published)]  # type: ignore[arg-type]

        def check() -> list[Row]:
            tiny = images.ensure(images.single_layer_image("tiny", 1 / 16), cache, log)
            return [bench.measure_check(published, tiny, args.tags, args.check_runs)]

        def rss() -> list[Row]:
            sized = [
                ("small", images.ensure(images.single_layer_image("layer", rss_small), cache, log)),
                ("large", images.ensure(images.single_layer_image("layer", rss_large), cache, log)),
            ]
            return bench.measure_rss(sized)

        group("put", put)
        group("get", get)
        group("rootfs", rootfs)
        group("apply", lambda: [bench.measure_apply(main_image)])
        group("check", check)  # more tags on the version put measured (or a tiny one)
        bench.stop_all()
        group("rss", rss)
        group("compress", lambda: bench.measure_compress(main_image))
        # The expensive build step hashes this many MiB: ≥ 10 s on the reference machine.
        group("cache", lambda: measure_cache(bench, 8 if args.smoke else 1536))
    finally:
        bench.stop_all()
        if not args.keep_work:
            remove_tree(work)
        if args.clean:
            remove_tree(cache)

    machine.load_after = load_average()
    log("")
    log(f"results ({settings['date']}; ratio = resource ÷ peer, median of the per-pair ratios)")
    for line in machine.lines():
        log(line)
    log(
        f"image: {main_image.uncompressed_mib:.1f} MiB uncompressed, "
        f"{main_image.compressed_mib:.1f} MiB gzip; {args.pairs} pairs"
    )
    log("")
    log(text_table(rows))
    write_results(results, rows, machine, settings)
    markdown = results.with_suffix(".md")
    markdown.write_text(
        f"Figures of {settings['date']} ({args.pairs} pairs, image "
        f"{main_image.uncompressed_mib:.0f} MiB / {main_image.compressed_mib:.0f} MiB gzip):\n\n"
        + markdown_table(rows)
        + "\n\n"
        + "\n".join(f"- {line}" for line in machine.lines())
        + "\n"
    )
    log(f"\nwritten: {results}, {markdown}; {time.monotonic() - started:.0f} s in all")
    if any(row.error for row in rows):
        return 1
    if args.strict and any(row.passed is False for row in rows):
        return 1
    return 0


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(main())
