"""The resource image, where users run it: /opt/resource/* inside containers shaped
like a Concourse worker's (runc; see concourse_container.py), over the image that
``make release`` published.

- fuse-only (privileged on a fuse-only worker): put of examples/hello with
  ``builder`` unset picks buildah and builds; check lists it; get's rootfs is right.
- unprivileged: put stops in one line naming ``privileged: true`` and publishes
  nothing; check and get still work.
- full privileged: put with ``builder: buildah`` builds; with ``builder`` unset, the
  choice is explained in one line, with img absent (buildah builds) and with it.

img and spruce in the image built here are stand-ins (tests/resource_image/
build_image.sh): their release binaries cannot be downloaded where CI runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.concourse import BUILD_ENV
from resource_image import concourse_container as cc
from resource_image.conftest import ROOT, PublishedImage

pytestmark = pytest.mark.image

HELLO = ROOT / "examples" / "hello"
SIZE_TARGET = 350 * 1000 * 1000  # bytes, uncompressed


@dataclass
class Worker:
    """Makes containers as a Concourse worker does: over the image's rootfs (a copy
    per mode), with the image's environment (its ENV, from get's metadata.json)."""

    image: PublishedImage
    rootfs_for: Callable[[str], Path]

    def run(self, mode: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        env = dict(item.split("=", 1) for item in self.image.metadata["env"])
        env.update(kwargs.pop("env", {}))
        return cc.run(mode, self.rootfs_for(mode), args, env=env, **kwargs)

    def step(
        self,
        mode: str,
        step: str,
        request: dict,
        volumes: dict[str, Path],
        directory: str | None = None,
    ) -> subprocess.CompletedProcess:
        """One /opt/resource step as Concourse runs it: the request on stdin, the
        build's metadata in a put's environment, the volumes mounted."""
        return self.run(
            mode,
            [f"/opt/resource/{step}"] + ([directory] if directory else []),
            stdin=json.dumps(request).encode(),
            env={**BUILD_ENV, "BUILD_JOB_NAME": f"{mode}-put"} if step == "out" else {},
            cwd=directory or "/",
            mounts=[cc.Mount(source, target) for target, source in volumes.items()],
        )


@pytest.fixture(scope="module")
def worker(image: PublishedImage, container_rootfs) -> Worker:
    return Worker(image, container_rootfs)


def hello_volume(where: Path, namespaced: bool) -> Path:
    """A put's working directory holding examples/hello as the input `src`, with the
    busybox its Dockerfile copies (the image has none)."""
    put_dir = where / "put"
    shutil.copytree(HELLO, put_dir / "src", ignore=shutil.ignore_patterns("release", "busybox"))
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is needed to build examples/hello"
    shutil.copy2(busybox, put_dir / "src" / "hello" / "busybox")
    if namespaced:
        cc.namespace_tree(put_dir)
    return put_dir


def empty_volume(path: Path, namespaced: bool) -> Path:
    path.mkdir(parents=True)
    if namespaced:
        cc.namespace_tree(path)
    return path


def stderr_lines(done) -> list[str]:
    return done.stderr.decode(errors="replace").splitlines()


# --- what the image holds -------------------------------------------------------------


def test_every_promised_tool_runs_in_the_image(worker: Worker) -> None:
    tools = ["img", "buildah", "runc", "spruce", "jq", "git", "make", "bash"]
    script = "; ".join(f'{tool} --version >/dev/null 2>&1; echo "{tool} $?"' for tool in tools)
    done = worker.run("full", ["sh", "-c", script])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split("\n")[:-1] == [f"{tool} 0" for tool in tools]


def test_no_dead_weight(image: PublishedImage) -> None:
    status = (image.rootfs / "var/lib/dpkg/status").read_text()
    packages = set(re.findall(r"^Package: (\S+)$", status, re.M))
    assert {"buildah", "runc", "netavark", "uidmap"} <= packages
    assert "containernetworking-plugins" not in packages
    assert not (image.rootfs / "usr/lib/cni").exists()
    site = next((image.rootfs / "opt/builder-resource/lib").glob("python3*/site-packages"))
    assert (site / "builder_resource").is_dir()
    left = sorted(p.name for p in site.iterdir() if p.name.split("-")[0] in ("pip", "setuptools"))
    assert left == []


COMPILED_CHECK = """
import importlib.util, json, os, sys
import builder_resource.put, builder_resource.get, builder_resource.fastcheck
import builder_resource.attest.sbom, cyclonedx.model.bom, cyclonedx.output.json
loaded = [m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)]
ours = [f for f in loaded if f.startswith("/opt/builder-resource/") and f.endswith(".py")]
missing = [f for f in ours if not os.path.exists(importlib.util.cache_from_source(f))]
print(json.dumps({"modules": len(ours), "missing": missing}))
"""


def test_what_the_steps_import_is_compiled_in_the_image(worker: Worker) -> None:
    """put and get run in a new container each time: a module without its compiled
    form in the image is compiled again on every run (-B: this run writes none)."""
    done = worker.run("full", ["/opt/builder-resource/bin/python3", "-B", "-c", COMPILED_CHECK])
    assert done.returncode == 0, done.stderr.decode()
    found = json.loads(done.stdout)
    assert found["modules"] > 100 and found["missing"] == []


def test_the_image_is_within_its_size(image: PublishedImage) -> None:
    total = sum(
        os.lstat(os.path.join(directory, name)).st_size
        for directory, _, files in os.walk(image.rootfs)
        for name in files
    )
    assert total <= SIZE_TARGET, f"{total / 1e6:.0f} MB uncompressed"


def test_the_build_time_ca_is_in_no_layer(image: PublishedImage) -> None:
    """The CA given as the secret `ca` (BUILD_CA, the machine's bundle on CI) must
    be in no layer: every certificate of it that the image does not carry anyway
    (its own ca-certificates) is searched for in every layer blob."""
    build_ca = Path(os.environ.get("BUILD_CA", "/etc/ssl/certs/ca-certificates.crt"))
    if not build_ca.is_file():
        pytest.skip("no BUILD_CA to look for")
    own = (image.rootfs / "etc/ssl/certs/ca-certificates.crt").read_text()
    foreign = [pem for pem in pem_bodies(build_ca.read_text()) if pem not in own]
    if not foreign:
        pytest.skip(f"every certificate in {build_ca} is one the image carries anyway")

    # A line from the middle of each certificate's base64: unique, and whole in any
    # file. The image's own bundle is the control: the same search must find it.
    def needle(pem: str) -> bytes:
        return pem.splitlines()[len(pem.splitlines()) // 2].encode()

    needles = [needle(pem) for pem in foreign]
    control = needle(pem_bodies(own)[0])
    found_control = False
    for layer in image_layers(image):
        found_control = found_control or control in layer
        for line in needles:
            assert line not in layer, f"a build-time CA certificate is in layer {layer.name}"
    assert found_control, "the search found not even the image's own CA bundle"


def pem_bodies(text: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", text, re.S)


class Layer(bytes):
    name: str


def image_layers(image: PublishedImage) -> Iterator[Layer]:
    """Each layer of the image, decompressed, from the layout store."""
    blobs = image.store / "blobs" / "sha256"

    def blob(digest: str) -> bytes:
        return (blobs / digest.removeprefix("sha256:")).read_bytes()

    index = json.loads(blob(image.version["digest"]))
    child = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.concourse-builder-img.role") == "image"
    )
    manifest = json.loads(blob(child["digest"]))
    for descriptor in manifest["layers"]:
        data = blob(descriptor["digest"])
        if "gzip" in descriptor["mediaType"] or data[:2] == b"\x1f\x8b":
            data = zlib.decompress(data, wbits=31)
        layer = Layer(data)
        layer.name = descriptor["digest"]
        yield layer


# --- fuse-only: put picks buildah and builds; check; get's rootfs is right -------------


@pytest.fixture(scope="module")
def fuse_only_put(worker: Worker, container_work):
    work = container_work("fuse-only")
    store = empty_volume(work / "store", namespaced=True)
    put_dir = hello_volume(work, namespaced=True)
    request = {"source": {"repository": "/store/hello"}, "params": {"context": "src"}}
    volumes = {"/store": store, "/tmp/build/put": put_dir}
    done = worker.step("fuse-only", "out", request, volumes, "/tmp/build/put")
    return work, store, done


def test_fuse_only_put_picks_buildah_and_builds(fuse_only_put) -> None:
    _, _, done = fuse_only_put
    log = stderr_lines(done)
    assert done.returncode == 0, "\n".join(log[-30:])
    assert (
        "builder: buildah, as source.builder is unset and root is mapped in a user "
        "namespace, where img cannot build (img#273)"
    ) in log
    result = json.loads(done.stdout)
    assert result["version"]["digest"].startswith("sha256:")
    assert {"name": "builder", "value": "buildah"} in result["metadata"]


@pytest.mark.parametrize("mode", ["fuse-only", "unprivileged"])
def test_check_and_get_give_the_right_rootfs(
    mode: str, fuse_only_put, worker: Worker, container_work
) -> None:
    """Of the version the fuse-only put made; check and get need no privileges."""
    _, store, put = fuse_only_put
    version = json.loads(put.stdout)["version"]
    source = {"repository": "/store/hello"}
    check = worker.step(mode, "check", {"source": source}, {"/store": store})
    assert check.returncode == 0, check.stderr.decode()
    assert json.loads(check.stdout) == [version]

    get_dir = empty_volume(container_work("get") / "get", namespaced=True)
    request = {"source": source, "version": version, "params": {"rootfs": True}}
    volumes = {"/store": store, "/tmp/build/get": get_dir}
    get = worker.step(mode, "in", request, volumes, "/tmp/build/get")
    assert get.returncode == 0, get.stderr.decode()
    assert json.loads(get.stdout)["version"] == version
    assert_hello_rootfs(get_dir)


def assert_hello_rootfs(get_dir: Path) -> None:
    """What examples/hello's Dockerfiles make, layer by layer."""
    hello = get_dir / "images" / "hello"
    assert (hello / "rootfs/etc/hello/message").read_text() == "hello dev\n"
    assert not (hello / "rootfs/var/cache/hello/build.log").exists()  # the whiteout
    assert (hello / "rootfs/var/cache/hello").is_dir()
    assert (hello / "rootfs/bin/busybox").stat().st_size > 100_000
    assert (hello / "rootfs/bin/sh").readlink() == Path("/bin/busybox")
    assert "GREETING=hello" in json.loads((hello / "metadata.json").read_text())["env"]
    greeter = get_dir / "images" / "greeter"
    greeting = greeter / "rootfs/home/greeter/greeting"
    assert greeting.read_text() == "greetings\n"
    # Owners are kept: 1000 inside the container is 1000 on the host too.
    assert (greeting.stat().st_uid, greeting.stat().st_gid) == (1000, 1000)
    assert json.loads((greeter / "metadata.json").read_text())["user"] == "greeter"
    assert (get_dir / "release/NOTES.txt").read_text() == "hello dev, built by buildah\n"


# --- unprivileged: put stops in one line; check and get still work ---------------------


def test_unprivileged_put_names_privileged_true_and_publishes_nothing(
    fuse_only_put, worker: Worker, container_work
) -> None:
    work, store, put = fuse_only_put
    assert put.returncode == 0
    before = sorted(p.name for p in store.rglob("*"))
    put_dir = hello_volume(container_work("put"), namespaced=True)
    for builder in (None, "img", "buildah"):
        source = {"repository": "/store/hello", **({"builder": builder} if builder else {})}
        request = {"source": source, "params": {"context": "src", "version": "9.9.9"}}
        volumes = {"/store": store, "/tmp/build/put": put_dir}
        done = worker.step("unprivileged", "out", request, volumes, "/tmp/build/put")
        errors = [line for line in stderr_lines(done) if line.startswith("error:")]
        assert done.returncode == 1 and done.stdout == b""
        assert len(errors) == 1 and errors == stderr_lines(done)[-1:], stderr_lines(done)
        assert "set `privileged: true` on the resource type" in errors[0]
        assert "namespaces" in errors[0]
    assert sorted(p.name for p in store.rglob("*")) == before  # nothing published


# --- full privileged ---------------------------------------------------------------------


def full_put(worker: Worker, where: Path, source: dict) -> tuple:
    store = empty_volume(where / "store", namespaced=False)
    put_dir = hello_volume(where, namespaced=False)
    request = {"source": {"repository": "/store/hello", **source}, "params": {"context": "src"}}
    volumes = {"/store": store, "/tmp/build/put": put_dir}
    return store, worker.step("full", "out", request, volumes, "/tmp/build/put")


def test_full_put_with_buildah_builds(worker: Worker, container_work) -> None:
    store, done = full_put(worker, container_work("full"), {"builder": "buildah"})
    assert done.returncode == 0, "\n".join(stderr_lines(done)[-30:])
    result = json.loads(done.stdout)
    assert {"name": "builder", "value": "buildah"} in result["metadata"]
    assert not any(line.startswith("builder: ") for line in stderr_lines(done))


def test_full_put_explains_its_choice_of_builder(
    worker: Worker, container_rootfs, container_work
) -> None:
    # With img (here the stand-in): chosen, and said why, in one line; the stand-in
    # then refuses to build, and put fails in one line too.
    _, with_img = full_put(worker, container_work("with-img"), {})
    log = stderr_lines(with_img)
    assert "builder: img, as source.builder is unset and installed, and root is real root" in log
    assert with_img.returncode == 1 and log[-1].startswith("error: ")

    # Without img (as where the real one could not be installed): buildah, and why.
    img = container_rootfs("full") / "usr/local/bin/img"
    img.rename(img.with_name("img.away"))
    try:
        _, without_img = full_put(worker, container_work("without-img"), {})
    finally:
        img.with_name("img.away").rename(img)
    log = stderr_lines(without_img)
    assert without_img.returncode == 0, "\n".join(log[-30:])
    assert "builder: buildah, as source.builder is unset and img is not installed" in log
