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
    python3 -m bench.get_profile --apply /dev/shm/x     # apply_layers vs GNU tar there,
                                                        # gzip and plain layers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from . import image as images
from .measures import Bench, alternate
from .procs import ROOT, Resource, Timed, ensure_venv, remove_tree, run_timed

PARAMS = {"docker": {"format": "docker"}, "rootfs": {"rootfs": True}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.get_profile", description=__doc__)
    parser.add_argument("--image", choices=("main", "small", "large"), default="main")
    parser.add_argument("--size-mib", type=float, default=400, help="main image size")
    parser.add_argument("--rss-mib", default="100,1024", help="the small and large layer sizes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="docker,rootfs", help="of docker,rootfs")
    parser.add_argument("--py-spy", choices=tuple(PARAMS), help="one get under py-spy instead")
    parser.add_argument(
        "--apply",
        type=Path,
        metavar="DIR",
        help="instead: apply_layers vs tar -xzf / tar -xf of the main image's layers in DIR",
    )
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
    if args.apply is not None:
        return apply_vs_tar(image, python, args.apply.resolve(), args.runs)
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


def apply_vs_tar(image: images.GeneratedImage, python: str, where: Path, pairs: int) -> int:
    """``apply_layers`` (a fresh process of the resource's Python, as bench's
    apply measure) against GNU tar extracting the same layers in order into one
    directory: the gzip blobs (``tar -xzf``) and the same layers uncompressed
    (``tar -xf``), in alternating pairs, on the filesystem of ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    plain_dir = where / "plain-layers"
    plain_dir.mkdir(exist_ok=True)
    plain = []
    for n, blob in enumerate(image.blobs):
        target = plain_dir / f"layer-{n}.tar"
        if not target.exists():
            with open(target, "wb") as out:
                subprocess.run(["gzip", "-dc", str(blob)], stdout=out, check=True)
        plain.append(target)
    code = (
        "import sys\nfrom functools import partial\n"
        "from builder_resource.oci.rootfs import apply_layers\n"
        "apply_layers([partial(open, p, 'rb') for p in sys.argv[2:]], sys.argv[1])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT / "resource")}
    try:
        for kind, layers, flag in (("gzip", image.blobs, "-xzf"), ("plain", plain, "-xf")):
            names = [str(p) for p in layers]

            def ours(i: int, names: list[str] = names) -> Timed:
                root = where / "apply"
                os.sync()
                try:
                    return run_timed([python, "-c", code, str(root), *names], env=env)
                finally:
                    remove_tree(root)

            def tar(i: int, names: list[str] = names, flag: str = flag) -> Timed:
                root = where / "tar"
                root.mkdir()
                script = f'set -e; d=$1; shift; for f; do tar {flag} "$f" -C "$d"; done'
                os.sync()
                try:
                    return run_timed(["sh", "-c", script, "sh", str(root), *names], env=env)
                finally:
                    remove_tree(root)

            results = alternate(pairs, ours, tar)
            for a, b in results:
                print(
                    f"  {kind}: apply_layers {a.wall:.2f} s (CPU {a.cpu or 0:.2f} s), "
                    f"tar {flag} {b.wall:.2f} s (CPU {b.cpu or 0:.2f} s)",
                    flush=True,
                )
            ratio = statistics.median(a.wall / b.wall for a, b in results)
            mine = statistics.median(a.wall for a, _ in results)
            theirs = statistics.median(b.wall for _, b in results)
            print(
                f"{kind} in {where}: apply_layers {mine:.2f} s, tar {flag} {theirs:.2f} s, "
                f"ratio {ratio:.2f} (median of {pairs} pairs)"
            )
    finally:
        remove_tree(plain_dir)
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
