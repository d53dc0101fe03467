"""put -> check -> get of examples/hello on a local OCI layout store, through
opt/resource/* driven the way Concourse drives them, with buildah building."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.tools import require

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello"

pytestmark = pytest.mark.e2e


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One put of examples/hello, shared by the read-only tests of this module."""
    require("buildah", "skopeo", "make", "git")
    tmp = tmp_path_factory.mktemp("hello")
    put_dir = tmp / "put"
    src = put_dir / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("release", "busybox"))
    git(src, "init", "-q")
    git(src, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", ".")
    git(src, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "hello")
    git(src, "remote", "add", "origin", "https://builder:s3cr3t-token@git.example.org/app.git")
    concourse = Concourse(tmp)
    source = {"repository": str(tmp / "store"), "password": "hunter2-secret", "username": "u"}
    result = concourse.put(source, {"context": "src", "env": {"VERSION": "1.0"}}, put_dir)
    assert result.returncode == 0, result.stderr
    return {
        "concourse": concourse,
        "source": source,
        "version": result.json["version"],
        "metadata": result.json["metadata"],
        "stderr": result.stderr,
        "release": src / "release",
        "tmp": tmp,
        "revision": git(src, "rev-parse", "HEAD"),
    }


def tree(root: Path, skip: set[str] = frozenset()) -> dict[str, tuple]:
    """Paths -> (type, mode, content or link target), for comparing trees."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel in skip:
            continue
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", st.st_mode, str(path.readlink()))
        elif path.is_dir():
            out[rel] = ("dir", st.st_mode, None)
        else:
            out[rel] = ("file", st.st_mode, path.read_bytes())
    return out


def test_put_prints_version_and_metadata(published: dict) -> None:
    version = published["version"]
    assert version["tag"].endswith("-" + published["revision"][:7])
    names = {m["name"]: m["value"] for m in published["metadata"]}
    assert names["revision"] == published["revision"]
    assert set(names) >= {"tag", "image hello", "image greeter", "files", "builder"}
    assert names["builder"] == "buildah"
    # The build's own output went to stderr, secrets did not.
    assert "STEP" in published["stderr"] or "COMMIT" in published["stderr"]
    assert "hunter2-secret" not in published["stderr"]
    assert "s3cr3t-token" not in published["stderr"]


def test_store_holds_one_index_with_images_and_files(published: dict) -> None:
    store = Path(published["source"]["repository"])
    index = json.loads((store / "index.json").read_text())
    tagged = [m for m in index["manifests"] if "artifactType" not in m]  # the rest: referrers
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in tagged] == [
        published["version"]["tag"]
    ]
    digest = published["version"]["digest"]
    release = json.loads((store / "blobs/sha256" / digest.split(":")[1]).read_text())
    assert release["artifactType"] == "application/vnd.concourse-builder-img.release.v1+json"
    notes = release["annotations"]
    assert notes["org.opencontainers.image.revision"] == published["revision"]
    assert notes["org.opencontainers.image.source"] == "https://git.example.org/app.git"
    assert notes["org.concourse-builder-img.build.job"] == "build"
    roles = sorted(m["annotations"]["org.concourse-builder-img.role"] for m in release["manifests"])
    assert roles == ["files", "image", "image"]
    # skopeo reads the store as an OCI layout: the tag names the version's index,
    # and inspecting it goes through to an image of this platform.
    out = subprocess.run(
        ["skopeo", "inspect", f"oci:{store}:{published['version']['tag']}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    inspected = json.loads(out.stdout)
    assert inspected["Digest"] == digest
    assert inspected["Os"] == "linux" and inspected["Layers"]


def test_check_lists_the_version(published: dict) -> None:
    concourse: Concourse = published["concourse"]
    assert concourse.check(published["source"]) == [published["version"]]
    assert concourse.check(published["source"], published["version"]) == [published["version"]]


def test_get_gives_back_the_release(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    dest = tmp_path / "get"
    result = concourse.get(published["source"], published["version"], None, dest)
    assert result.returncode == 0, result.stderr
    assert (dest / "tag").read_text() == published["version"]["tag"]
    assert (dest / "digest").read_text() == published["version"]["digest"]
    images = {"hello.tar", "greeter.tar"}
    assert tree(dest / "release", images) == tree(published["release"], images)
    assert (dest / "release" / "hello").is_symlink()
    assert (dest / "release" / "docs" / "empty").is_dir()
    for name in ("hello", "greeter"):
        archive = dest / "release" / f"{name}.tar"
        digest = (dest / "images" / name / "digest").read_text()
        ref = (dest / "images" / name / "ref").read_text()
        assert ref == f"{published['source']['repository']}@{digest}"
        for transport in ("docker-archive", "oci-archive"):
            out = subprocess.run(
                ["skopeo", "inspect", "--raw", f"{transport}:{archive}"],
                capture_output=True,
                check=False,
            )
            assert out.returncode == 0, out.stderr
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci-archive:{archive}"],
            capture_output=True,
            check=True,
        ).stdout
        import hashlib

        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert not (dest / "images" / "hello" / "rootfs").exists()
    assert not list(dest.glob(".get-*"))


def test_get_rootfs_applies_layers_and_metadata(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    dest = tmp_path / "get"
    result = concourse.get(
        published["source"], published["version"], {"rootfs": True, "format": "oci"}, dest
    )
    assert result.returncode == 0, result.stderr
    hello = dest / "images" / "hello"
    assert (hello / "rootfs" / "etc" / "hello" / "message").read_text() == "hello 1.0\n"
    # Deleted by a later layer: the whiteout was applied, and never left behind.
    assert (hello / "rootfs" / "var" / "cache" / "hello").is_dir()
    assert not (hello / "rootfs" / "var" / "cache" / "hello" / "build.log").exists()
    assert not list((hello / "rootfs").rglob(".wh.*"))
    assert (hello / "rootfs" / "bin" / "sh").is_symlink()
    meta = json.loads((hello / "metadata.json").read_text())
    assert "GREETING=hello" in meta["env"] and meta["user"] == ""
    greeter = dest / "images" / "greeter"
    assert json.loads((greeter / "metadata.json").read_text())["user"] == "greeter"
    assert (greeter / "rootfs" / "home" / "greeter" / "greeting").read_text() == "greetings\n"
    assert (greeter / "rootfs" / "home" / "greeter").stat().st_uid == 1000


def test_get_is_deterministic(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    trees = []
    for n in (1, 2):
        dest = tmp_path / f"get{n}"
        result = concourse.get(
            published["source"], published["version"], {"rootfs": ["hello"]}, dest
        )
        assert result.returncode == 0, result.stderr
        trees.append(tree(dest))
    assert trees[0] == trees[1]
    assert "images/hello/rootfs/etc/hello/message" in trees[0]


def test_get_formats_and_selection(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    dest = tmp_path / "layout"
    result = concourse.get(
        published["source"],
        published["version"],
        {"format": "oci-layout", "images": ["hello"]},
        dest,
    )
    assert result.returncode == 0, result.stderr
    layout = dest / "release" / "hello.tar"
    assert layout.is_dir()
    subprocess.run(["skopeo", "inspect", f"oci:{layout}"], check=True, capture_output=True)
    assert not (dest / "release" / "greeter.tar").exists()
    assert (dest / "release" / "NOTES.txt").is_file()

    skip = tmp_path / "skip"
    result = concourse.get(published["source"], published["version"], {"skip_download": True}, skip)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in skip.iterdir()) == ["digest", "tag"]

    bad = tmp_path / "bad"
    result = concourse.get(published["source"], published["version"], {"images": ["nope"]}, bad)
    assert result.returncode == 1
    assert result.error_line == (
        "error: params.images: no image nope in this version (greeter, hello)"
    )


def test_get_of_a_vanished_version_fails(published: dict, tmp_path: Path) -> None:
    concourse: Concourse = published["concourse"]
    gone = {"tag": "0.0.1", "digest": "sha256:" + "0" * 64}
    result = concourse.get(published["source"], gone, None, tmp_path / "gone")
    assert result.returncode == 1
    assert "version 0.0.1" in result.error_line and "no longer exists" in result.error_line
    assert "Traceback" not in result.stderr


def _raw_digest(reference: str) -> str:
    import hashlib

    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", reference], capture_output=True, check=True
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("fmt", ["docker", "oci", "oci-layout"])
def test_every_tool_reads_the_tarballs(published: dict, tmp_path: Path, fmt: str) -> None:
    """skopeo (and buildah, for docker) read each format, and the image's digest in
    it is the one stored."""
    concourse: Concourse = published["concourse"]
    dest = tmp_path / "get"
    params = {"format": fmt, "images": ["greeter", "hello"]}
    result = concourse.get(published["source"], published["version"], params, dest)
    assert result.returncode == 0, result.stderr
    for name in ("hello", "greeter"):
        archive = dest / "release" / f"{name}.tar"
        stored = (dest / "images" / name / "digest").read_text()
        if fmt == "oci-layout":
            assert _raw_digest(f"oci:{archive}") == stored
            continue
        assert _raw_digest(f"oci-archive:{archive}") == stored
        copies = ["oci-archive"] + (["docker-archive"] if fmt == "docker" else [])
        for transport in copies:
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "-q",
                    f"{transport}:{archive}",
                    f"oci:{tmp_path}/{name}-{transport}:x",
                ],
                check=True,
                capture_output=True,
            )
    if fmt == "docker":
        env = {**os.environ, "STORAGE_DRIVER": "vfs"}
        archive = dest / "release" / "hello.tar"
        pulled = subprocess.run(
            ["buildah", "pull", "-q", f"docker-archive:{archive}"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert pulled.returncode == 0, pulled.stderr
        image_id = pulled.stdout.strip().splitlines()[-1]
        config = json.loads(
            subprocess.run(
                ["buildah", "inspect", "--type", "image", image_id],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout
        )
        assert "GREETING=hello" in config["OCIv1"]["config"]["Env"]
