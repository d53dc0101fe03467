"""``python3 -m bench.get_profile``: get alone, in detail — wall and peak RSS of a
few gets (``format: docker`` and ``rootfs: true``) of the benchmark images, and
optionally one get under py-spy (sampling, threads included; ``pip install
py-spy``) to see what the time goes to. The harness is ``bench/``'s: the
resource runs through ``opt/resource/in`` with the venv's Python, from a fresh
local registry.

    python3 -m bench.get_profile                        # main image, 3 runs each
    python3 -m bench.get_profile --image large --runs 1 # one 1 GiB layer (RSS)
    python3 -m bench.get_profile --py-spy rootfs        # where a rootfs get spends it
    python3 -m bench.get_profile --workdir /dev/shm/x   # outputs on tmpfs
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections import Counter
from pathlib import Path

from . import image as images
from .measures import Bench
from .procs import ROOT, Resource, ensure_venv, remove_tree

PARAMS = {"docker": {"format": "docker"}, "rootfs": {"rootfs": True}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.get_profile", description=__doc__)
    parser.add_argument("--image", choices=("main", "small", "large"), default="main")
    parser.add_argument("--size-mib", type=float, default=400, help="main image size")
    parser.add_argument("--rss-mib", default="100,1024", help="the small and large layer sizes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="docker,rootfs", help="of docker,rootfs")
    parser.add_argument("--py-spy", choices=tuple(PARAMS), help="one get under py-spy instead")
    parser.add_argument("--python", help="the resource's Python (default: the .bench/venv one)")
    parser.add_argument("--bench-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--cache", type=Path, help="cached images (default BENCH_DIR/images)")
    parser.add_argument("--workdir", type=Path, help="registry and outputs (default BENCH_DIR)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    bench_dir = args.bench_dir.resolve()
    cache = (args.cache or bench_dir / "images").resolve()
    python = args.python or str(ensure_venv(bench_dir / "venv"))
    small, large = (float(x) for x in args.rss_mib.split(","))
    spec = {
        "main": lambda: images.main_image(args.size_mib, 3000),
        "small": lambda: images.single_layer_image("layer", small),
        "large": lambda: images.single_layer_image("layer", large),
    }[args.image]()
    image = images.ensure(spec, cache)
    work = (args.workdir or bench_dir).resolve() / "get-profile-work"
    remove_tree(work)
    work.mkdir(parents=True)
    bench = Bench(work, Resource(python, work / "home"), 1)
    try:
        registry = bench.registry()
        _, published = bench.put(registry, image.oci_archive, "1.0.0")
        print(
            f"image {args.image}: {image.uncompressed_mib:.0f} MiB, "
            f"{image.compressed_mib:.0f} MiB gzip; outputs in {work}"
        )
        if args.py_spy:
            return py_spy(bench, published, args.py_spy, python, work, bench_dir)
        for kind in args.only.split(","):
            walls, peaks = [], []
            for _ in range(args.runs):
                timed = bench.get(published, PARAMS[kind])
                walls.append(timed.wall)
                peaks.append(timed.rss_mib or 0)
                print(
                    f"  {kind}: {timed.wall:.2f} s, CPU {timed.cpu or 0:.2f} s, "
                    f"peak RSS {timed.rss_mib:.0f} MiB",
                    flush=True,
                )
            print(
                f"{kind}: median {statistics.median(walls):.2f} s, "
                f"peak RSS max {max(peaks):.0f} MiB over {args.runs} run(s)"
            )
    finally:
        bench.stop_all()
        remove_tree(work)
    return 0


def py_spy(bench: Bench, published, kind: str, python: str, work: Path, out: Path) -> int:  # noqa: ANN001
    """One get under ``py-spy record``; prints the top of the profile."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy not found (pip install py-spy)")
        return 1
    flame = out / f"get-{kind}.speedscope.json"
    script = work / "python"
    script.write_text(
        f'#!/bin/sh\nexec {spy} record -r 250 --threads -f speedscope -o {flame} -- {python} "$@"\n'
    )
    script.chmod(0o755)
    bench.resource = Resource(str(script), work / "home")
    timed = bench.get(published, PARAMS[kind])
    print(f"{kind} under py-spy: {timed.wall:.2f} s; profile {flame} (open in speedscope)")
    summarize(flame)
    return 0


def summarize(flame: Path, top: int = 12) -> None:
    """Per thread: samples, and the functions with the most samples on top (self)
    and anywhere on the stack (inclusive)."""
    data = json.loads(flame.read_text())
    frames = data["shared"]["frames"]

    def label(i: int) -> str:
        f = frames[i]
        return f"{f['name']} ({Path(f.get('file', '?')).name}:{f.get('line', '?')})"

    for profile in data["profiles"]:
        samples, weights = profile["samples"], profile["weights"]
        total = sum(weights)
        if not total:
            continue
        own: Counter[int] = Counter()
        anywhere: Counter[int] = Counter()
        for stack, w in zip(samples, weights, strict=True):
            if stack:
                own[stack[-1]] += w
            for i in set(stack):
                anywhere[i] += w
        print(f"\n== {profile['name']}: {total} samples")
        print("  self:")
        for i, w in own.most_common(top):
            print(f"    {100 * w / total:5.1f}%  {label(i)}")
        print("  inclusive:")
        for i, w in anywhere.most_common(top):
            print(f"    {100 * w / total:5.1f}%  {label(i)}")


if __name__ == "__main__":
    sys.exit(main())
