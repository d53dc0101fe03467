"""A build whose Dockerfile says ``FROM`` an image in a private registry: TLS with
the test CA, htpasswd Basic auth (tests/fixtures/registry.py's ``basic_registry``).

The credentials are only in ``source.registries`` and the CA only in
``source.ca_certs`` (or ``LOCAL_CA_CERTIFICATE``); the put runs through
opt/resource/out as Concourse runs it, with buildah as the builder. Without the
credentials, or without the CA, the same put fails, and the password appears in
no output.

Each put uses a buildah store of its own (``CONTAINERS_STORAGE_CONF`` in the
pipeline's ``env``), so the base image is never already there: every build
really pulls it.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.concourse import Concourse
from fixtures.registry import Registry
from fixtures.tools import require

pytestmark = pytest.mark.integration

IMAGE = "localhost/private-from:1"


def storage_conf(directory: Path) -> Path:
    """A buildah store in ``directory``: vfs, nothing shared with the machine's."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "storage.conf"
    conf.write_text(
        "[storage]\n"
        'driver = "vfs"\n'
        f'graphroot = "{directory / "root"}"\n'
        f'runroot = "{directory / "run"}"\n'
    )
    return conf


def buildah(conf: Path, *args: str) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(conf.parent),
        "CONTAINERS_STORAGE_CONF": str(conf),
        "STORAGE_DRIVER": "vfs",
        "BUILDAH_ISOLATION": "chroot",
    }
    done = subprocess.run(
        ["buildah", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"buildah {args[0]}: {done.stderr}"


@dataclass
class PrivateBase:
    registry: Registry
    reference: str  # 127.0.0.1:PORT/tests/...:1


@pytest.fixture(scope="module")
def private_base(basic_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> PrivateBase:
    """A FROM-scratch busybox image, pushed to the password-protected registry."""
    require("buildah", "busybox")
    work = tmp_path_factory.mktemp("private-base")
    context = work / "context"
    context.mkdir()
    shutil.copy(shutil.which("busybox") or "/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "RUN echo base > /etc/base-marker\n"
    )
    conf = storage_conf(work / "storage")
    reference = f"{basic_registry.host}/tests/private-base-{uuid.uuid4().hex[:8]}:1"
    buildah(conf, "build", "--quiet", "-t", "localhost/private-base:1", str(context))
    certs = work / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_text(basic_registry.ca_pem or "")
    auth = work / "auth.json"
    secret = f"{basic_registry.username}:{basic_registry.password}".encode()
    auth.write_text(
        json.dumps({"auths": {basic_registry.host: {"auth": base64.b64encode(secret).decode()}}})
    )
    buildah(
        conf,
        "push",
        "--quiet",
        "--cert-dir",
        str(certs),
        "--authfile",
        str(auth),
        "localhost/private-base:1",
        f"docker://{reference}",
    )
    shutil.rmtree(work / "storage", ignore_errors=True)
    return PrivateBase(basic_registry, reference)


def sources(tmp_path: Path, base: str) -> Path:
    """The put's directory: an input ``src`` whose Dockerfile builds FROM ``base``."""
    put_dir = tmp_path / "put"
    src = put_dir / "src"
    src.mkdir(parents=True)
    (src / "Dockerfile").write_text(f"FROM {base}\nRUN echo built-on-private > /from-private\n")
    return put_dir


def put(
    tmp_path: Path,
    base: PrivateBase,
    *,
    credentials: bool = True,
    ca_in_source: bool = True,
    ca_in_env: bool = False,
):
    registry = base.registry
    source: dict = {
        "repository": str(tmp_path / "store"),
        "builder": "buildah",
        "command": f"$DOCKER build --quiet -t {IMAGE} .",
        "images": [IMAGE],
        "env": {"CONTAINERS_STORAGE_CONF": str(storage_conf(tmp_path / "storage"))},
    }
    if credentials:
        source["registries"] = [
            {"host": registry.host, "username": registry.username, "password": registry.password}
        ]
    if ca_in_source:
        source["ca_certs"] = [registry.ca_pem]
    concourse = Concourse(tmp_path)
    if ca_in_env:
        concourse.extra_env["LOCAL_CA_CERTIFICATE"] = registry.ca_pem or ""
    result = concourse.put(source, {"context": "src"}, sources(tmp_path, base.reference))
    assert registry.password and registry.password not in result.stdout + result.stderr
    return concourse, source, result


def assert_built_on_the_private_base(concourse: Concourse, source: dict, result, tmp_path: Path):
    assert result.returncode == 0, result.stderr
    names = {m["name"]: m["value"] for m in result.json["metadata"]}
    assert names["builder"] == "buildah"
    assert "image private-from" in names
    dest = tmp_path / "get"
    got = concourse.get(source, result.json["version"], {"rootfs": True}, dest)
    assert got.returncode == 0, got.stderr
    rootfs = dest / "images" / "private-from" / "rootfs"
    assert (rootfs / "from-private").read_text() == "built-on-private\n"
    assert (rootfs / "etc" / "base-marker").read_text() == "base\n"  # from the private base
    assert (rootfs / "bin" / "busybox").is_file()


def test_from_private_registry_with_source_registries_and_ca_certs(
    private_base: PrivateBase, tmp_path: Path
) -> None:
    concourse, source, result = put(tmp_path, private_base)
    assert_built_on_the_private_base(concourse, source, result, tmp_path)


def test_from_private_registry_with_local_ca_certificate(
    private_base: PrivateBase, tmp_path: Path
) -> None:
    concourse, source, result = put(tmp_path, private_base, ca_in_source=False, ca_in_env=True)
    assert_built_on_the_private_base(concourse, source, result, tmp_path)


def test_without_credentials_the_build_fails(private_base: PrivateBase, tmp_path: Path) -> None:
    concourse, source, result = put(tmp_path, private_base, credentials=False)
    assert result.returncode != 0
    assert "authentication required" in result.stderr or "unauthorized" in result.stderr
    assert result.error_line.startswith("error: `$DOCKER build")
    assert "nothing was published" in result.error_line
    assert concourse.check(source) == []


def test_without_the_ca_the_build_fails(private_base: PrivateBase, tmp_path: Path) -> None:
    _, _, result = put(tmp_path, private_base, ca_in_source=False)
    assert result.returncode != 0
    assert "certificate signed by unknown authority" in result.stderr
    assert "nothing was published" in result.error_line
