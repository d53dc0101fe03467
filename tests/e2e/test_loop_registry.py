"""put -> check -> get against a real registry (Debian's docker-registry), over
plain HTTP, TLS with a CA given two ways, Basic and Bearer auth; and what skopeo
makes of what put pushed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.projects import EXPECTED_ROOTFS, image_project
from fixtures.registry import Registry, skopeo_env
from fixtures.tools import require

pytestmark = pytest.mark.e2e


def roundtrip(concourse: Concourse, source: dict, tmp_path: Path) -> dict:
    """One put, a check, a get with rootfs; returns the version."""
    sources = tmp_path / "put"
    command = image_project(sources)
    put = concourse.put(source, {"context": "src", "command": command, "version": "1.0.0"}, sources)
    assert put.returncode == 0, put.stderr
    version = put.json["version"]
    assert concourse.check(source) == [version]
    assert concourse.check(source, version) == [version]
    dest = tmp_path / "get"
    get = concourse.get(source, version, {"rootfs": True}, dest)
    assert get.returncode == 0, get.stderr
    root = dest / "images" / "layers" / "rootfs"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == EXPECTED_ROOTFS
    assert (dest / "images" / "layers" / "ref").read_text() == (
        f"{source['repository']}@{(dest / 'images' / 'layers' / 'digest').read_text()}"
    )
    return version


def test_plain_http_with_insecure(
    concourse: Concourse, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    require("skopeo")
    source = {"repository": registry.repository(repo_name), "insecure": True}
    version = roundtrip(concourse, source, tmp_path)
    # skopeo reads the version's index and each image by digest, and copies it.
    index = json.loads(
        subprocess.run(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"docker://{source['repository']}@{version['digest']}",
            ],
            capture_output=True,
            check=True,
            env=skopeo_env(),
        ).stdout
    )
    images = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.concourse-builder-img.role"] == "image"
    ]
    assert len(images) == 1
    ref = f"docker://{source['repository']}@{images[0]['digest']}"
    subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", ref],
        capture_output=True,
        check=True,
        env=skopeo_env(),
    )
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/copy:x"],
        capture_output=True,
        check=True,
        env=skopeo_env(),
    )


def test_tls_with_ca_certs(
    concourse: Concourse, tls_registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    source = {"repository": tls_registry.repository(repo_name), "ca_certs": [tls_registry.ca_pem]}
    roundtrip(concourse, source, tmp_path)


def test_tls_with_local_ca_certificate(
    concourse: Concourse, tls_registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    source = {"repository": tls_registry.repository(repo_name)}
    untrusted = concourse.run("check", {"source": source})
    assert untrusted.returncode == 1
    assert "certificate" in untrusted.error_line.lower()
    concourse.extra_env["LOCAL_CA_CERTIFICATE"] = tls_registry.ca_pem or ""
    roundtrip(concourse, source, tmp_path)


def test_basic_auth_and_a_wrong_password(
    concourse: Concourse, basic_registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    source = {
        "repository": basic_registry.repository(repo_name),
        "ca_certs": [basic_registry.ca_pem],
        "username": basic_registry.username,
        "password": basic_registry.password,
    }
    roundtrip(concourse, source, tmp_path)
    wrong = {**source, "password": "definitely-wrong-pw"}
    result = concourse.run("check", {"source": wrong})
    assert result.returncode == 1
    assert "authentication failed" in result.error_line
    assert "definitely-wrong-pw" not in result.stderr
    assert basic_registry.password not in result.stderr  # type: ignore[operator]
    assert len(result.stderr.strip().splitlines()) == 1
    # put asks the light client first; its refusal is still the full client's line
    sources = tmp_path / "put-wrong"
    command = image_project(sources)
    put = concourse.put(wrong, {"context": "src", "command": command, "version": "2.0.0"}, sources)
    assert put.returncode == 1
    assert "authentication failed" in put.error_line
    assert "definitely-wrong-pw" not in put.stderr


def test_bearer_token_auth(
    concourse: Concourse, token_registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    source = {
        "repository": token_registry.repository(repo_name),
        "insecure": True,
        "username": token_registry.username,
        "password": token_registry.password,
    }
    roundtrip(concourse, source, tmp_path)


def test_a_put_that_fails_leaves_no_version(
    concourse: Concourse, fault_proxy, repo_name: str, tmp_path: Path
) -> None:
    from fixtures.http_fakes import Fault

    source = {"repository": f"{fault_proxy.host}/{repo_name}", "insecure": True}
    # Every attempt at the index's tag fails: retries run out, the put fails.
    fault_proxy.add(Fault("PUT", r"/manifests/1\.0\.0$", 500, times=100))
    sources = tmp_path / "put"
    command = image_project(sources)
    put = concourse.put(source, {"context": "src", "command": command, "version": "1.0.0"}, sources)
    assert put.returncode == 1
    assert "1.0.0" in put.error_line
    assert concourse.check(source) == []


def test_a_put_of_blobs_already_there_does_not_import_requests(
    concourse: Concourse, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    """The second put of the same image finds every blob: the light client HEADs
    them and PUTs the manifests, and requests is never imported (``-X importtime``
    through PYTHONPROFILEIMPORTTIME shows what each put loaded)."""
    source = {"repository": registry.repository(repo_name), "insecure": True}
    concourse.extra_env["PYTHONPROFILEIMPORTTIME"] = "1"
    imported = []
    for version in ("1.0.0", "1.0.1"):
        sources = tmp_path / version
        command = image_project(sources)
        params = {"context": "src", "command": command, "version": version}
        put = concourse.put(source, params, sources)
        assert put.returncode == 0, put.stderr[-3000:]
        lines = [line for line in put.stderr.splitlines() if line.startswith("import time:")]
        imported.append({line.rsplit("|", 1)[-1].strip() for line in lines})
    assert "requests" in imported[0]  # the first put uploaded its blobs with requests
    assert "pydantic" in imported[1] and "requests" not in imported[1]
    assert concourse.check(source)[-1]["tag"] == "1.0.1"
