"""The resource image under test: the newest version in the store that
``make release`` published it to (tests/resource_image/build_image.sh builds it offline),
given back by the resource's own get with ``rootfs: true``.

Without a published image these tests skip, unless ``BUILDER_IMAGE_REQUIRED=1``
(as .ci/run sets it), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from resource_image.concourse_container import namespace_tree

ROOT = Path(__file__).resolve().parents[2]
STORE = Path(os.environ.get("BUILDER_IMAGE_STORE", ROOT / ".release-store"))
IMAGE_NAME = "concourse-builder-img"


@dataclass(frozen=True)
class PublishedImage:
    store: Path
    version: dict
    rootfs: Path
    metadata: dict


def _step(name: str, request: dict, directory: Path | None = None) -> object:
    argv = [str(ROOT / "opt" / "resource" / name)] + ([str(directory)] if directory else [])
    done = subprocess.run(
        argv, input=json.dumps(request).encode(), capture_output=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> PublishedImage:
    if not (STORE / "index.json").is_file():
        message = f"no resource image published in {STORE}: run tests/resource_image/build_image.sh"
        if os.environ.get("BUILDER_IMAGE_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    source = {"repository": str(STORE)}
    versions = _step("check", {"source": source})
    assert isinstance(versions, list) and versions
    version = versions[-1]
    get_dir = tmp_path_factory.mktemp("image-get")
    _step("in", {"source": source, "version": version, "params": {"rootfs": True}}, get_dir)
    image_dir = get_dir / "images" / IMAGE_NAME
    return PublishedImage(
        STORE,
        version,
        image_dir / "rootfs",
        json.loads((image_dir / "metadata.json").read_text()),
    )


@pytest.fixture(scope="session")
def container_work() -> Iterator[Callable[[str], Path]]:
    """New directories for containers' root filesystems and volumes. Not under
    pytest's temporary directory: that is 0700, and root in a user namespace is
    not the owner, so it could reach nothing below."""
    top = Path(tempfile.mkdtemp(prefix="concourse-containers-"))
    top.chmod(0o755)

    def new(name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=top))

    yield new
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def container_rootfs(
    image: PublishedImage, container_work: Callable[[str], Path]
) -> Callable[[str], Path]:
    """A private copy of the image's rootfs for one container mode (its ownership
    shifted for the user-namespaced modes), as a worker makes one per container."""
    made: dict[str, Path] = {}

    def for_mode(mode: str) -> Path:
        if mode not in made:
            rootfs = container_work(mode) / "rootfs"
            rootfs.parent.chmod(0o755)
            subprocess.run(["cp", "-a", str(image.rootfs), str(rootfs)], check=True)
            if mode != "full":
                namespace_tree(rootfs)
            made[mode] = rootfs
        return made[mode]

    return for_mode
