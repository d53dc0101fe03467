"""The measures of issue 6: the resource (A) against its peer (B), in pairs whose
order alternates (A B, B A, A B, ...) so that drift on a shared machine cancels.
Every push goes into a fresh registry; nothing but the step itself is timed
(registry start, ``sync``, clean-up are not)."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .image import GeneratedImage
from .procs import ROOT, Resource, Timed, peer_env, remove_tree, run_timed
from .registry import Registry, start_registry
from .report import Row, median

A = TypeVar("A")
B = TypeVar("B")
REPO = "bench/app"
IMAGE_NAME = "app"  # release/app.tar in the put's output
RSS_LIMIT_MIB = 80.0
RSS_GROWTH_MIB = 10.0  # "about the same" for a 100 MiB and a 1 GiB layer
GZIP_TARGET = 500.0  # MiB/s


def alternate(n: int, a: Callable[[int], A], b: Callable[[int], B]) -> list[tuple[A, B]]:
    """``n`` pairs, A first in even pairs and B first in odd ones."""
    pairs = []
    for i in range(n):
        if i % 2 == 0:
            first_a = a(i)
            second_b = b(i)
            pairs.append((first_a, second_b))
        else:
            first_b = b(i)
            second_a = a(i)
            pairs.append((second_a, first_b))
    return pairs


def ratios(pairs: list[tuple[float, float]]) -> float | None:
    return median([x / y for x, y in pairs if x is not None and y])


@dataclass
class Published:
    """A version the resource put into ``registry``."""

    registry: Registry
    version: dict[str, str]
    image_digest: str


@dataclass
class Bench:
    work: Path
    resource: Resource
    pairs: int
    log: Callable[[str], None] = print
    sync: bool = True  # write back dirty pages before each timed step
    registries: list[Registry] = field(default_factory=list)
    _counter: int = 0

    # --- plumbing ------------------------------------------------------------------------

    def scratch(self, kind: str) -> Path:
        self._counter += 1
        path = self.work / f"{kind}-{self._counter}"
        remove_tree(path)
        return path

    def registry(self) -> Registry:
        registry = start_registry(self.scratch("registry"))
        self.registries.append(registry)
        return registry

    def drop(self, registry: Registry) -> None:
        registry.stop()
        if registry in self.registries:
            self.registries.remove(registry)

    def stop_all(self) -> None:
        for registry in list(self.registries):
            self.drop(registry)

    @property
    def peer_env(self) -> dict[str, str]:
        return peer_env(self.work / "peer-home")

    def settle(self) -> None:
        """Write back what the last step left dirty, so that it is not billed to the next."""
        if self.sync:
            os.sync()

    def source(self, registry: Registry) -> dict[str, Any]:
        return {"repository": f"{registry.host}/{REPO}", "insecure": True, "builder": "buildah"}

    # --- the resource ----------------------------------------------------------------------

    def put(
        self, registry: Registry, archive: Path, tag: str, **source: Any
    ) -> tuple[Timed, Published]:
        """The resource's put whose build just links ``archive`` into release/;
        ``source``: keys added to the source."""
        sources = self.scratch("put")
        (sources / "src").mkdir(parents=True)
        a = shlex.quote(str(archive))
        command = (
            f"mkdir -p release && {{ cp -l {a} release/{IMAGE_NAME}.tar 2>/dev/null "
            f"|| cp {a} release/{IMAGE_NAME}.tar; }}"
        )
        request = {
            "source": {**self.source(registry), **source},
            "params": {"context": "src", "version": tag, "command": command},
        }
        self.settle()
        try:
            timed = self.resource.run("out", request, sources)
        finally:
            remove_tree(sources)
        out = timed.json()
        metadata = {item["name"]: item["value"] for item in out.get("metadata", [])}
        image_digest = metadata.get(f"image {IMAGE_NAME}", "")
        return timed, Published(registry, out["version"], image_digest)

    def get(self, published: Published, params: dict[str, Any]) -> Timed:
        destination = self.scratch("get")
        request = {
            "source": self.source(published.registry),
            "params": params,
            "version": published.version,
        }
        self.settle()
        try:
            return self.resource.run("in", request, destination)
        finally:
            remove_tree(destination)

    # --- the peers -------------------------------------------------------------------------

    def skopeo(self, *args: str) -> Timed:
        self.settle()
        return run_timed(["skopeo", *args], env=self.peer_env, cwd=self.work)

    def skopeo_push(self, registry: Registry, transport: str, archive: Path, tag: str) -> Timed:
        return self.skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"{transport}:{archive}",
            f"docker://{registry.host}/{REPO}:{tag}",
        )

    def skopeo_pull_docker_archive(self, registry: Registry, reference: str) -> Timed:
        """``reference``: ``@sha256:…`` or ``:tag``."""
        out = self.scratch("skopeo-get") / "app.tar"
        out.parent.mkdir(parents=True)
        try:
            return self.skopeo(
                "copy",
                "--src-tls-verify=false",
                f"docker://{registry.host}/{REPO}{reference}",
                f"docker-archive:{out}",
            )
        finally:
            remove_tree(out.parent)

    def skopeo_umoci(self, published: Published) -> tuple[float, float | None]:
        """``skopeo copy docker://… oci:DIR:tag`` then ``umoci unpack``: wall, peak RSS."""
        scratch = self.scratch("umoci")
        scratch.mkdir(parents=True)
        layout, bundle = scratch / "layout", scratch / "bundle"
        try:
            pulled = self.skopeo(
                "copy",
                "--src-tls-verify=false",
                f"docker://{published.registry.host}/{REPO}@{published.image_digest}",
                f"oci:{layout}:bench",
            )
            rootless = [] if os.geteuid() == 0 else ["--rootless"]
            unpacked = run_timed(
                ["umoci", "unpack", *rootless, "--image", f"{layout}:bench", str(bundle)],
                env=self.peer_env,
                cwd=scratch,
            )
        finally:
            remove_tree(scratch)
        peaks = [p for p in (pulled.rss_mib, unpacked.rss_mib) if p is not None]
        return pulled.wall + unpacked.wall, max(peaks) if peaks else None

    # --- measures --------------------------------------------------------------------------

    def measure_put(self, image: GeneratedImage) -> tuple[list[Row], Published]:
        """put into a fresh registry, then again with every blob there; skopeo the same.
        Also put with ``sbom: false`` into another fresh registry: the transfer alone,
        without the SBOM's read of every layer."""
        kept: list[Published] = []
        registry_cpu: tuple[list[float], list[float]] = ([], [])  # resource's pushes, skopeo's

        def a(i: int) -> tuple[Timed, Timed, Timed]:
            registry = self.registry()
            cpu = registry.cpu_seconds()
            first, published = self.put(registry, image.oci_archive, "1.0.0")
            registry_cpu[0].append(registry.cpu_seconds() - cpu)
            again, _ = self.put(registry, image.oci_archive, "1.0.1")
            for old in kept:
                self.drop(old.registry)
            kept[:] = [published]
            bare_registry = self.registry()
            try:
                bare, _ = self.put(bare_registry, image.oci_archive, "1.0.0", sbom=False)
            finally:
                self.drop(bare_registry)
            self.log(
                f"  put pair {i + 1}: resource {first.wall:.2f} s, again {again.wall:.2f} s, "
                f"sbom: false {bare.wall:.2f} s"
            )
            return first, again, bare

        def b(i: int) -> tuple[Timed, Timed]:
            registry = self.registry()
            try:
                cpu = registry.cpu_seconds()
                first = self.skopeo_push(registry, "oci-archive", image.oci_archive, "1.0.0")
                registry_cpu[1].append(registry.cpu_seconds() - cpu)
                again = self.skopeo_push(registry, "oci-archive", image.oci_archive, "1.0.1")
            finally:
                self.drop(registry)
            self.log(f"  put pair {i + 1}: skopeo {first.wall:.2f} s, again {again.wall:.2f} s")
            return first, again

        pairs = alternate(self.pairs, a, b)
        fresh = [(ra[0], rb[0]) for ra, rb in pairs]
        again = [(ra[1], rb[1]) for ra, rb in pairs]
        bare = [(ra[2], rb[0]) for ra, rb in pairs]
        size = f"{image.compressed_mib:.0f} MiB gzip"
        rows = [
            _wall_row(
                "put_fresh",
                f"put into a fresh registry ({size}) vs skopeo copy oci-archive:",
                fresh,
                0.8,
            ),
            _wall_row("put_again", "put again, every blob there, vs skopeo re-push", again, 1.2),
            _wall_row(
                "put_fresh_no_sbom",
                "the same fresh put with sbom: false (the transfer alone) vs skopeo copy",
                bare,
                0.8,
            ),
        ]
        rows[0].note += (
            f"; the registry's CPU during the push: {median(registry_cpu[0]) or 0:.2f} s for "
            f"the resource's, {median(registry_cpu[1]) or 0:.2f} s for skopeo's"
        )
        return rows, kept[0]

    def measure_get_docker(self, published: Published) -> Row:
        def a(i: int) -> Timed:
            return self.get(published, {"format": "docker"})

        def b(i: int) -> Timed:
            return self.skopeo_pull_docker_archive(published.registry, "@" + published.image_digest)

        pairs = alternate(self.pairs, a, b)
        return _wall_row(
            "get_docker", "get format: docker vs skopeo copy docker:// docker-archive:", pairs, 0.9
        )

    def measure_get_rootfs(self, published: Published) -> Row:
        def a(i: int) -> tuple[float, float | None]:
            timed = self.get(published, {"rootfs": True})
            return timed.wall, timed.rss_mib

        def b(i: int) -> tuple[float, float | None]:
            return self.skopeo_umoci(published)

        pairs = alternate(self.pairs, a, b)
        row = Row(
            "get_rootfs",
            "get rootfs: true vs skopeo copy oci: + umoci unpack",
            "s",
            "ratio ≤ 0.6",
            resource=median([x[0] for x, _ in pairs]),
            peer=median([y[0] for _, y in pairs]),
            ratio=ratios([(x[0], y[0]) for x, y in pairs]),
            resource_rss=median([x[1] for x, _ in pairs]),
            peer_rss=median([y[1] for _, y in pairs]),
            samples=len(pairs),
            pairs=[(x[0], y[0]) for x, y in pairs],
        )
        row.passed = row.ratio is not None and row.ratio <= 0.6
        return row

    def measure_apply(self, image: GeneratedImage) -> Row:
        """``apply_layers`` on the gzip blobs (the resource's Python) vs ``tar -xzf`` each."""
        blobs = [str(b) for b in image.blobs]
        code = (
            "import sys\nfrom functools import partial\n"
            "from builder_resource.oci.rootfs import apply_layers\n"
            "apply_layers([partial(open, p, 'rb') for p in sys.argv[2:]], sys.argv[1])\n"
        )
        env = {**self.peer_env, "PYTHONPATH": str(ROOT / "resource")}

        def a(i: int) -> Timed:
            root = self.scratch("apply")
            self.settle()
            try:
                return run_timed([self.resource.python, "-c", code, str(root), *blobs], env=env)
            finally:
                remove_tree(root)

        def b(i: int) -> Timed:
            root = self.scratch("tar")
            root.mkdir(parents=True)
            script = 'set -e; d=$1; shift; for f; do tar -xzf "$f" -C "$d"; done'
            self.settle()
            try:
                return run_timed(["sh", "-c", script, "sh", str(root), *blobs], env=self.peer_env)
            finally:
                remove_tree(root)

        pairs = alternate(self.pairs, a, b)
        return _wall_row(
            "apply_layers", "apply_layers alone vs tar -xzf of the same layers", pairs, 1.3
        )

    def measure_check(
        self, published: Published | None, image: GeneratedImage, tags: int, runs: int
    ) -> Row:
        """check with the cursor at the newest of ``tags`` tags vs ``skopeo list-tags``:
        in the registry of ``published`` (a version the resource put), or else in a
        fresh one with ``image`` put into it; the version's index gets more tags."""
        own = published is None
        if published is None:
            _, published = self.put(self.registry(), image.oci_archive, "1.0.0")
        registry = published.registry
        try:
            index = registry.get_manifest(REPO, published.version["tag"])
            wanted = [f"1.0.{n}" for n in range(tags)]
            present = set(registry.list_tags(REPO))
            registry.put_manifests(REPO, [t for t in wanted if t not in present], index)
            # the put's referrers index (issue 14) is a tag too, never a version
            versions = [t for t in registry.list_tags(REPO) if not t.startswith("sha256-")]
            if len(versions) != tags:
                raise RuntimeError(f"the registry does not hold exactly {tags} tags")
            source = self.source(registry)
            container = self.resource.with_tmp(self.scratch("check-tmp"))  # one, reused
            started = container.run("check", {"source": source}, rss=False)
            latest = started.json()
            if len(latest) != 1:
                raise RuntimeError(f"check without a cursor gave {latest!r}")
            cursor = latest[0]
            cold = started.wall * 1000  # the container's first check: nothing cached yet
            reference = f"docker://{registry.host}/{REPO}"

            def a(i: int) -> float:
                timed = container.run("check", {"source": source, "version": cursor}, rss=False)
                if timed.json() != [cursor]:
                    raise RuntimeError(f"check from the newest tag gave {timed.stdout[:200]}")
                return timed.wall * 1000

            def b(i: int) -> float:
                args = ["skopeo", "list-tags", "--tls-verify=false", reference]
                timed = run_timed(args, env=self.peer_env, rss=False)
                if len(json.loads(timed.stdout)["Tags"]) != len(registry.list_tags(REPO)):
                    raise RuntimeError("skopeo list-tags: wrong number of tags")
                return timed.wall * 1000

            if runs >= 5:
                a(-1), b(-1)  # warm-up, not measured
            pairs = alternate(runs, a, b)
        finally:
            if own:
                self.drop(registry)
        row = Row(
            "check",
            f"check, cursor at the newest of {tags} tags, vs skopeo list-tags",
            "ms",
            "≤ 100 ms, ratio ≤ 3",
            resource=median([x for x, _ in pairs]),
            peer=median([y for _, y in pairs]),
            ratio=ratios(pairs),
            samples=len(pairs),
            pairs=pairs,
            note=(
                f"cursor {cursor['tag']}; wall from process start, medians of {runs} runs in "
                f"one reused TMPDIR (a check container); its first check (no cursor) took "
                f"{cold:.1f} ms"
            ),
        )
        row.passed = (
            row.resource is not None
            and row.resource <= 100
            and row.ratio is not None
            and row.ratio <= 3
        )
        return row

    def measure_rss(self, images: list[tuple[str, GeneratedImage]]) -> list[Row]:
        """Peak RSS of put and of get (format docker) while moving one big layer."""
        puts: list[Row] = []
        gets: list[Row] = []
        for size, image in images:
            registry = self.registry()
            try:
                put, published = self.put(registry, image.oci_archive, "1.0.0")
                got = self.get(published, {"format": "docker"})
            finally:
                self.drop(registry)
            registry = self.registry()
            try:
                peer_put = self.skopeo_push(registry, "oci-archive", image.oci_archive, "1.0.0")
                peer_get = self.skopeo_pull_docker_archive(registry, ":1.0.0")
            finally:
                self.drop(registry)
            for rows, step, mine, theirs in (
                (puts, "put", put, peer_put),
                (gets, "get", got, peer_get),
            ):
                rows.append(
                    Row(
                        f"rss_{step}_{size}",
                        f"peak RSS, {step} of one {image.compressed_mib:.0f} MiB layer",
                        "MiB",
                        f"≤ {RSS_LIMIT_MIB:.0f} MiB",
                        resource=mine.rss_mib,
                        peer=theirs.rss_mib,
                        ratio=_div(mine.rss_mib, theirs.rss_mib),
                        ratio_of="RSS",
                        resource_rss=mine.rss_mib,
                        peer_rss=theirs.rss_mib,
                        samples=1,
                        note=f"wall {mine.wall:.2f} s vs skopeo {theirs.wall:.2f} s (1 run)",
                    )
                )
        for rows in (puts, gets):
            small = rows[0].resource
            for row in rows:
                row.passed = row.resource is not None and row.resource <= RSS_LIMIT_MIB
            for row in rows[1:]:
                row.target += f", ≤ small + {RSS_GROWTH_MIB:.0f}"
                if small is not None and row.resource is not None:
                    row.passed = bool(row.passed) and row.resource <= small + RSS_GROWTH_MIB
        return puts + gets

    def measure_compress(self, image: GeneratedImage) -> list[Row]:
        """put of the docker-archive (uncompressed layers): gzip throughput and
        the same manifest digest on every run; skopeo's push of it as the peer."""
        assert image.docker_archive is not None
        mib = image.uncompressed_mib
        digests: list[str] = []
        phases: list[float | None] = []

        def a(i: int) -> Timed:
            registry = self.registry()
            try:
                timed, published = self.put(registry, image.docker_archive, "1.0.0")  # type: ignore[arg-type]
            finally:
                self.drop(registry)
            digests.append(published.image_digest)
            phases.append(gzip_phase_seconds(timed.stderr, mib))
            return timed

        def b(i: int) -> Timed:
            registry = self.registry()
            try:
                return self.skopeo_push(registry, "docker-archive", image.docker_archive, "1.0.0")  # type: ignore[arg-type]
            finally:
                self.drop(registry)

        pairs = alternate(max(2, self.pairs), a, b)
        same = len(set(digests)) == 1 and bool(digests[0])
        logged = [p for p in phases if p]
        if logged:
            throughput = median([mib / p for p in logged])
            how = "gzip phase from the resource's log"
        else:
            throughput = median([mib / x.wall for x, _ in pairs])
            how = "no gzip timing in the resource's log: whole put wall time"
        row = Row(
            "compress",
            f"put of a docker-archive ({mib:.0f} MiB uncompressed): gzip throughput",
            "MiB/s",
            f"≥ {GZIP_TARGET:.0f} MiB/s, same digest",
            resource=throughput,
            peer=median([mib / y.wall for _, y in pairs]),
            ratio=ratios([(x.wall, y.wall) for x, y in pairs]),
            resource_rss=median([x.rss_mib for x, _ in pairs]),
            peer_rss=median([y.rss_mib for _, y in pairs]),
            samples=len(pairs),
            pairs=[(x.wall, y.wall) for x, y in pairs],
            note=(
                f"{how}; put wall {median([x.wall for x, _ in pairs]):.2f} s vs skopeo "
                f"{median([y.wall for _, y in pairs]):.2f} s (ratio of walls); manifest digest "
                f"{'the same' if same else 'DIFFERENT'} on {len(digests)} runs "
                f"({digests[0][:19] if digests else '?'}…)"
            ),
        )
        row.passed = throughput is not None and throughput >= GZIP_TARGET and same
        return [row, self.measure_gzip_alone(image)]

    def measure_gzip_alone(self, image: GeneratedImage) -> Row:
        """The resource's gzip writer alone, in its Python, over the same layers."""
        code = (
            "import hashlib, json, sys, tarfile, time\n"
            "from builder_resource.oci.gzip_writer import gzip_backend, gzip_writer\n"
            "class Sink:\n"
            "    def __init__(self, f): self.f, self.h = f, hashlib.sha256()\n"
            "    def write(self, b): self.h.update(b); return self.f.write(b)\n"
            "    def flush(self): self.f.flush()\n"
            "total, seconds = 0, 0.0\n"
            "with tarfile.open(sys.argv[1]) as archive:\n"
            "    for m in archive:\n"
            "        if not m.name.endswith('.tar'): continue\n"
            "        src = archive.extractfile(m)\n"
            "        with open(sys.argv[2], 'wb') as out:\n"
            "            start = time.perf_counter()\n"
            "            with gzip_writer(Sink(out)) as gz:\n"
            "                gz.write_from(src)  # as prepare.gzip_to_file feeds it\n"
            "            seconds += time.perf_counter() - start\n"
            "        total += m.size\n"
            "print(json.dumps({'mib': total / 2**20, 'seconds': seconds,"
            " 'backend': gzip_backend()}))\n"
        )
        scratch = self.scratch("gzip")
        scratch.mkdir(parents=True)
        env = {**self.peer_env, "PYTHONPATH": str(ROOT / "resource")}
        try:
            runs = []
            for _ in range(max(1, min(self.pairs, 3))):
                self.settle()
                timed = run_timed(
                    [
                        self.resource.python,
                        "-c",
                        code,
                        str(image.docker_archive),
                        str(scratch / "out.gz"),
                    ],
                    env=env,
                )
                runs.append(json.loads(timed.stdout))
        finally:
            remove_tree(scratch)
        row = Row(
            "gzip_alone",
            "the resource's gzip_writer alone on the same layers (+ sha256)",
            "MiB/s",
            f"≥ {GZIP_TARGET:.0f} MiB/s",
            resource=median([r["mib"] / r["seconds"] for r in runs]),
            samples=len(runs),
            note=f"backend {runs[0]['backend']}; reads the docker-archive from the page cache",
        )
        row.passed = row.resource is not None and row.resource >= GZIP_TARGET
        return row


GZIP_SECONDS = re.compile(r"(?P<mib>[\d.]+)\s*MiB\s+in\s+(?P<seconds>[\d.]+)\s*s\b")
GZIP_RATE = re.compile(r"(?:(?P<mib>[\d.]+)\s*MiB\b.*?)?(?P<rate>[\d.]+)\s*MiB/s")


def gzip_phase_seconds(stderr: str, total_mib: float) -> float | None:
    """Seconds of the gzip phase from the resource's log lines that mention gzip,
    like ``gzipped 4 layer(s): 388.1 MiB in 0.61 s (636 MiB/s, isal)`` (one in all,
    or one per layer), else None."""
    seconds = 0.0
    last_rate = None
    for line in stderr.splitlines():
        if "gzip" not in line.lower():
            continue
        if match := GZIP_SECONDS.search(line):
            seconds += float(match["seconds"])
        elif match := GZIP_RATE.search(line):
            rate = float(match["rate"])
            if match["mib"] and rate:
                seconds += float(match["mib"]) / rate
            else:
                last_rate = rate
    if seconds:
        return seconds
    return total_mib / last_rate if last_rate else None


def _cpu(runs: Iterable[Timed]) -> str:
    value = median([run.cpu for run in runs if run.cpu is not None])
    return "—" if value is None else f"{value:.2f} s"


def _div(x: float | None, y: float | None) -> float | None:
    return x / y if x is not None and y else None


def _wall_row(row_id: str, label: str, pairs: list[tuple[Timed, Timed]], limit: float) -> Row:
    row = Row(
        row_id,
        label,
        "s",
        f"ratio ≤ {limit}",
        resource=median([x.wall for x, _ in pairs]),
        peer=median([y.wall for _, y in pairs]),
        ratio=ratios([(x.wall, y.wall) for x, y in pairs]),
        resource_rss=median([x.rss_mib for x, _ in pairs]),
        peer_rss=median([y.rss_mib for _, y in pairs]),
        samples=len(pairs),
        pairs=[(x.wall, y.wall) for x, y in pairs],
        note=f"CPU user+sys: resource {_cpu(x for x, _ in pairs)}, "
        f"peer {_cpu(y for _, y in pairs)}",
    )
    row.passed = row.ratio is not None and row.ratio <= limit
    return row
