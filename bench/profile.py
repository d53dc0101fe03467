"""``python3 -m bench.profile STEP``: one run of the resource under cProfile, as the
benchmark runs it (``opt/resource/*``, clean environment, the venv's Python), and
the functions that took the time.

STEP is one of ``put``, ``put-again``, ``get``, ``rootfs``, ``check``,
``compress``. The profile is kept in ``.bench/profile-STEP.prof`` (open it with
``python3 -m pstats`` or snakeviz). ``--importtime`` runs ``-X importtime``
instead and lists the slowest imports.
"""

from __future__ import annotations

import argparse
import pstats
import re
import shlex
import sys
from pathlib import Path

from . import image as images
from .measures import REPO, Bench, Published
from .procs import ROOT, Resource, ensure_venv, remove_tree

STEPS = ("put", "put-again", "get", "rootfs", "check", "compress")


# Runs what the wrapper scripts ask of Python (``[-P] -m module args`` or
# ``[-P] -c code args``) under cProfile, into the file named by argv[1].
PROFILE_SHIM = """\
import cProfile, runpy, sys
out, args = sys.argv[1], sys.argv[2:]
while args and args[0] in ("-P", "-I", "-s", "-S", "-E"):
    args = args[1:]
if args[0] == "-m":
    sys.argv = [args[1], *args[2:]]
    code = "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
else:
    sys.argv = ["-c", *args[2:]]
    code = args[1]
cProfile.runctx(code, {"runpy": runpy, "sys": sys, "__name__": "__main__"}, {}, out)
"""


def wrapper(directory: Path, python: str, profile: Path | None) -> Path:
    """A script to give as ``BUILDER_RESOURCE_PYTHON``: the Python under cProfile
    (writing ``profile``), or with ``-X importtime`` when ``profile`` is None."""
    script = directory / "python"
    if profile is None:
        command = shlex.join([python, "-X", "importtime"])
    else:
        shim = directory / "profile_shim.py"
        shim.write_text(PROFILE_SHIM)
        command = shlex.join([python, str(shim), str(profile)])
    script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    script.chmod(0o755)
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.profile", description=__doc__)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--size-mib", type=float, default=400)
    parser.add_argument("--python", help="the resource's Python (default: the .bench/venv one)")
    parser.add_argument("--bench-dir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--importtime", action="store_true", help="-X importtime instead")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (default cumulative)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    bench_dir = args.bench_dir.resolve()
    python = args.python or str(ensure_venv(bench_dir / "venv"))
    main_image = images.ensure(images.main_image(args.size_mib, 3000), bench_dir / "images")
    work = bench_dir / "profile-work"
    remove_tree(work)
    work.mkdir(parents=True)
    prof = bench_dir / f"profile-{args.step}.prof"
    script = wrapper(work, python, None if args.importtime else prof)
    profiled = Resource(str(script), work / "home", work / "tmp")
    bench = Bench(work, Resource(python, work / "home", work / "tmp"), 1)
    try:
        registry = bench.registry()
        archive = main_image.oci_archive
        if args.step == "check":
            tiny = images.ensure(images.single_layer_image("tiny", 1 / 16), bench_dir / "images")
            archive = tiny.oci_archive
        if args.step == "compress":
            archive = main_image.docker_archive  # type: ignore[assignment]
        if args.step in ("put", "compress"):
            bench.resource = profiled
            timed, _ = bench.put(registry, archive, "1.0.0")
        else:
            _, published = bench.put(registry, archive, "1.0.0")
            bench.resource = profiled
            timed = run_step(bench, args.step, published, archive)
    finally:
        bench.stop_all()
        remove_tree(work)
    print(f"{args.step}: {timed.wall:.3f} s wall, peak RSS {timed.rss_mib or 0:.0f} MiB")
    if args.importtime:
        print_imports(timed.stderr, args.top)
    else:
        pstats.Stats(str(prof)).sort_stats(args.sort).print_stats(args.top)
        print(f"profile: {prof}")
    return 0


def run_step(bench: Bench, step: str, published: Published, archive: Path):  # noqa: ANN201
    if step == "put-again":
        return bench.put(published.registry, archive, "1.0.1")[0]
    if step == "get":
        return bench.get(published, {"format": "docker"})
    if step == "rootfs":
        return bench.get(published, {"rootfs": True})
    registry = published.registry
    registry.put_manifests(
        REPO, [f"1.0.{n}" for n in range(1, 200)], registry.get_manifest(REPO, "1.0.0")
    )
    cursor = {"tag": "1.0.199", "digest": published.version["digest"]}
    request = {"source": bench.source(registry), "version": cursor}
    Resource(python_of(bench), bench.resource.home, bench.resource.tmp).run("check", request)
    # the second check in the same TMPDIR, as in a reused check container
    return bench.resource.run("check", request)


def python_of(bench: Bench) -> str:
    """The plain Python behind the profiling wrapper script."""
    script = Path(bench.resource.python).read_text().splitlines()[1]
    return shlex.split(script)[1]  # exec PYTHON ...


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def print_imports(stderr: str, top: int) -> None:
    """The slowest top-level imports (cumulative), from ``-X importtime``."""
    found = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            found.append((int(match[2]), int(match[1]), len(match[3]) // 2, match[4]))
    total = sum(cumulative for cumulative, _, depth, _ in found if depth == 0)
    print(f"imports: {total / 1000:.0f} ms in all (top level, cumulative)")
    for cumulative, own, depth, name in sorted(found, reverse=True)[:top]:
        print(f"{cumulative / 1000:8.1f} ms {own / 1000:7.1f} ms own  {'  ' * depth}{name}")


if __name__ == "__main__":
    sys.exit(main())
