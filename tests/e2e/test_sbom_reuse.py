"""A put of an image the newest version already holds takes that version's SBOM
instead of reading the layers again, and only where it may: the same image (name
and manifest digest), and with a signing key, a statement that key signed.

The build command copies one fixed oci-archive (a dpkg status file in its layer)
into release/, so that two puts publish the same image."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from fixtures.archives import layer_tar, write_oci_archive
from fixtures.concourse import Concourse
from fixtures.registry import Registry
from fixtures.tools import require

pytestmark = pytest.mark.e2e

REUSED = "sbom of app: the same image's, from the newest version"
DPKG = b"Package: hello\nStatus: install ok installed\nVersion: 2.10-3\nArchitecture: amd64\n\n"


def keypair(directory: Path, name: str) -> tuple[str, str]:
    key, pub = directory / f"{name}.pem", directory / f"{name}.pub"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
        check=True,
    )
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    return key.read_text(), pub.read_text()


class Project:
    """A put whose build copies ``archive`` (an image named app) into release/."""

    def __init__(self, concourse: Concourse, tmp: Path, source: dict) -> None:
        self.concourse, self.tmp, self.source = concourse, tmp, source
        self.archive = tmp / "app.tar"
        self.image({"var/lib/dpkg/status": DPKG})

    def image(self, files: dict[str, bytes]) -> None:
        write_oci_archive(self.archive, [layer_tar(files)])

    def put(self, version: str, **source: object) -> tuple[dict, str]:
        sources = self.tmp / f"put-{version}"
        (sources / "src").mkdir(parents=True)
        copy = f"mkdir -p release && cp {shlex.quote(str(self.archive))} release/app.tar"
        params = {"context": "src", "version": version, "command": copy}
        result = self.concourse.put({**self.source, **source}, params, sources)
        assert result.returncode == 0, result.stderr
        return result.json["version"], result.stderr

    def sbom(self, version: dict, **source: object) -> dict:
        dest = self.tmp / f"get-{version['tag']}"
        result = self.concourse.get(
            {**self.source, **source}, version, {"attestations": True}, dest
        )
        assert result.returncode == 0, result.stderr
        return json.loads((dest / "attestations" / "sbom" / "app.cdx.json").read_text())


@pytest.fixture
def project(tmp_path: Path, registry: Registry, repo_name: str) -> Project:
    require("buildah", "openssl")
    source = {"repository": registry.repository(repo_name), "insecure": True, "builder": "buildah"}
    return Project(Concourse(tmp_path), tmp_path, source)


def test_the_same_image_takes_the_newest_versions_sbom(project: Project) -> None:
    first, log = project.put("1.0.0")
    assert REUSED not in log and "sbom of app: 1 components" in log
    second, log = project.put("1.0.1")
    assert REUSED in log and "sbom of app: 1 components" not in log
    reused = project.sbom(second)
    assert reused == project.sbom(first)
    assert [c["name"] for c in reused["components"]] == ["hello"]


def test_another_image_is_read_afresh(project: Project) -> None:
    project.put("1.0.0")
    project.image({"var/lib/dpkg/status": DPKG.replace(b"hello", b"other")})
    version, log = project.put("1.0.1")
    assert REUSED not in log
    assert [c["name"] for c in project.sbom(version)["components"]] == ["other"]


def test_with_a_key_only_what_that_key_signed_is_taken(project: Project) -> None:
    key_a, pub_a = keypair(project.tmp, "a")
    key_b, pub_b = keypair(project.tmp, "b")
    _, log = project.put("1.0.0")  # unsigned: not taken by a signing put
    version, log = project.put("1.0.1", signing_key=key_a)
    assert REUSED not in log
    version, log = project.put("1.0.2", signing_key=key_a)
    assert REUSED in log
    assert project.sbom(version, verify_keys=[pub_a])["components"][0]["name"] == "hello"
    version, log = project.put("1.0.3", signing_key=key_b)  # another key: read afresh
    assert REUSED not in log
    assert project.sbom(version, verify_keys=[pub_b])["components"][0]["name"] == "hello"


def test_debug_shows_this_resources_detail_not_every_librarys(project: Project) -> None:
    _, log = project.put("1.0.0", debug=True)
    assert "requests from here on" in log  # the registry client's debug line
    assert "Starting new HTTP connection" in log  # urllib3's, asked for with debug
    assert "Registering" not in log  # py-serializable's set-up, under cyclonedx
