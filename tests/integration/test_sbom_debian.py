"""The SBOM of an image built FROM a debootstrapped Debian (issue 14) lists its
Debian packages, with the versions dpkg records, and the Python distribution the
build added. The Debian rootfs is made once per session (minbase, ~30 s)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.tools import require

pytestmark = pytest.mark.integration

BASE = "localhost/builder-tests/debian:minbase"
BUILDAH_ENV = {"STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def buildah(*args: str) -> str:
    import os

    done = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, env={**os.environ, **BUILDAH_ENV}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture(scope="session")
def debian_base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """debootstrap's minbase committed as an image; dpkg's own view of it."""
    require("debootstrap", "buildah")
    rootfs = tmp_path_factory.mktemp("debian") / "rootfs"
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    listed = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f=${Package} ${Version}\n"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    container = buildah("from", "scratch")
    try:
        buildah("copy", container, str(rootfs), "/")
        buildah("commit", "--quiet", container, BASE)
    finally:
        buildah("rm", container)
    return dict(line.split(" ", 1) for line in listed.splitlines())


def test_sbom_lists_the_debian_packages(debian_base: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "put" / "src"
    dist_info = src / "app" / "site" / "demo_pkg-1.2.3.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo_pkg\nVersion: 1.2.3\n")
    (src / "app" / "Dockerfile").write_text(
        f"FROM {BASE}\nCOPY site /usr/lib/python3/dist-packages/\n"
    )
    command = (
        "mkdir -p release && $DOCKER build -t localhost/builder-tests/deb-app app"
        " && buildah push --quiet localhost/builder-tests/deb-app"
        " oci-archive:release/app.tar:localhost/builder-tests/deb-app"
    )
    concourse = Concourse(tmp_path)
    source = {"repository": str(tmp_path / "store"), "builder": "buildah"}
    put = concourse.put(source, {"context": "src", "command": command, "version": "1"}, src.parent)
    assert put.returncode == 0, put.stderr
    timing = re.search(r"sbom of app: (\d+) components in ([\d.]+) s", put.stderr)
    assert timing, put.stderr
    dest = tmp_path / "get"
    get = concourse.get(
        source, put.json["version"], {"attestations": True, "skip_download": True}, dest
    )
    assert get.returncode == 0, get.stderr
    bom = json.loads((dest / "attestations" / "sbom" / "app.cdx.json").read_text())
    debs = {c["name"]: c["version"] for c in bom["components"] if c["purl"].startswith("pkg:deb/")}
    assert debs == debian_base  # every package dpkg lists, at its version, and no other
    assert {"bash", "dpkg", "apt", "coreutils"} <= set(debs)
    assert any(c["purl"] == "pkg:pypi/demo-pkg@1.2.3" for c in bom["components"])
    assert all("distro=debian-12" in c["purl"] for c in bom["components"] if "deb/" in c["purl"])
