"""Seeded fault schedules between the resource and a real registry: put, check and
get through opt/resource/*, with a fault proxy answering some requests with a
reset (before forwarding, or after half the answer), a 5xx, a 429 with Retry-After,
a delay or a corrupted body. Every fault is transient (at most twice in a row for
one request, under the retry budget), so every step must succeed, and get must give
back exactly what a fault-free get gives. A corrupted body may fail a get (one
line, nothing written) but never passes as data."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.http_fakes import Fault
from fixtures.projects import image_project

from .conftest import FIGURES, SCALE, SEED
from .invariants import assert_every_tag_complete

pytestmark = pytest.mark.integration

#: Where put, check and get talk to the registry, as (method, path regex).
REQUESTS = [
    ("GET", r"^/v2/$"),
    ("GET", r"/tags/list"),
    ("HEAD", r"/manifests/"),
    ("GET", r"/manifests/"),
    ("PUT", r"/manifests/"),
    ("HEAD", r"/blobs/sha256:"),
    ("GET", r"/blobs/sha256:"),
    ("POST", r"/blobs/uploads/$"),
    ("PUT", r"/blobs/uploads/"),
]
TRANSIENT = ["reset", "reset-body", 500, 502, 503, 429, "delay"]


def random_faults(rng: random.Random, count: int) -> list[Fault]:
    faults = []
    for _ in range(count):
        method, path = rng.choice(REQUESTS)
        action = rng.choice(TRANSIENT)
        if action == "reset-body" and method in ("HEAD", "PUT", "POST"):
            action = "reset"  # no body to cut
        faults.append(
            Fault(
                method,
                path,
                action,
                times=rng.choice([1, 1, 2]),
                headers={"Retry-After": "1"} if action == 429 else {},
                delay=rng.uniform(0.2, 1.5),
            )
        )
    return faults


def tree_digest(root: Path) -> str:
    """The files get wrote, as one digest (paths, kinds, contents)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            h.update(f"L {rel} {path.readlink()}\n".encode())
        elif path.is_file():
            h.update(f"F {rel} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
        else:
            h.update(f"D {rel}\n".encode())
    return h.hexdigest()


def test_every_transient_fault_is_survived(
    concourse: Concourse, registry, fault_proxy, repo_name: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    source = {"repository": f"{fault_proxy.host}/{repo_name}", "insecure": True}
    command = image_project(tmp_path / "put")
    reference = None
    for round_ in range(4 * SCALE):
        faults = random_faults(rng, rng.randint(1, 3))
        fault_proxy.faults.clear()
        fault_proxy.seen.clear()
        fault_proxy.add(*faults)
        schedule = [(f.method, f.path, f.action, f.times) for f in faults]

        put = concourse.put(
            source, {"context": "src", "command": command, "version": f"1.0.{round_}"},
            tmp_path / "put",
        )  # fmt: skip
        assert put.returncode == 0, f"seed {SEED} round {round_} {schedule}: {put.stderr[-1500:]}"
        version = put.json["version"]
        versions = concourse.check(source, version)
        assert versions[0] == version, (schedule, versions)
        get_dir = tmp_path / f"get-{round_}"
        got = concourse.get(source, version, {"format": "oci"}, get_dir)
        assert got.returncode == 0, f"seed {SEED} round {round_} {schedule}: {got.stderr[-1500:]}"
        digest = tree_digest(get_dir / "release")
        reference = reference or digest
        assert digest == reference  # the same build, the same bytes, faults or not

        injected = sum(1 for seen in fault_proxy.seen if seen.faulted is not None)
        FIGURES["faults injected"] += injected
        FIGURES["steps run under faults"] += 3
        FIGURES["puts that survived faults"] += 1
    assert_every_tag_complete(f"http://{registry.host}", repo_name)


def test_a_corrupted_body_never_passes_as_data(
    concourse: Concourse, registry, fault_proxy, repo_name: str, tmp_path: Path
) -> None:
    source = {"repository": f"{fault_proxy.host}/{repo_name}", "insecure": True}
    command = image_project(tmp_path / "put")
    put = concourse.put(
        source, {"context": "src", "command": command, "version": "1.0.0"}, tmp_path / "put"
    )
    assert put.returncode == 0, put.stderr
    version = put.json["version"]
    clean = concourse.get(source, version, {"format": "oci"}, tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    expected = tree_digest(tmp_path / "clean" / "release")
    rng = random.Random(SEED)
    for round_ in range(3 * SCALE):
        fault_proxy.faults.clear()
        target = rng.choice([r"/blobs/sha256:", r"/manifests/sha256:"])
        fault_proxy.add(Fault("GET", target, "corrupt", times=rng.choice([1, 5])))
        dest = tmp_path / f"get-{round_}"
        got = concourse.get(source, version, {"format": "oci"}, dest)
        FIGURES["corrupted bodies served"] += 1
        if got.returncode == 0:
            assert tree_digest(dest / "release") == expected  # retried, and right
        else:
            assert got.error_line.startswith("error: ")
            assert not dest.exists() or not any(dest.iterdir()), "a failed get left files"
            FIGURES["corrupted bodies refused"] += 1
