"""The build's environment: CA certificates, registry credentials, Concourse's
variables, the privilege probe, and that no secret reaches the log.

The system CA store of the machine running the tests is never touched: the
system-store step is pointed at a temporary tree (with Debian's real
``update-ca-certificates`` where installed) or left off.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from builder_resource.building import privileges
from builder_resource.building.buildah import Buildah
from builder_resource.building.credentials import RegistryLogin, auth_key, docker_config
from builder_resource.building.environment import BuildSettings, prepare_build
from builder_resource.building.img import Img
from builder_resource.certificates import (
    SystemStore,
    install_into_system_store,
    trust_extra_cas,
    trusted_certificates,
    wants_system_install,
)
from builder_resource.config import Source
from builder_resource.errors import BuildError, ConfigError
from fixtures.pki import make_ca

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pa55-w0rd-never-logged"
BUILD_VARS = {
    "BUILD_ID": "7",
    "BUILD_NAME": "42",
    "BUILD_JOB_NAME": "build",
    "BUILD_PIPELINE_NAME": "app",
    "BUILD_TEAM_NAME": "main",
    "ATC_EXTERNAL_URL": "https://ci.example.org",
}


@pytest.fixture(scope="module")
def ca_pems() -> tuple[str, str]:
    return make_ca("first test CA").cert_pem, make_ca("second test CA").cert_pem


@pytest.fixture
def system_store(tmp_path: Path) -> SystemStore:
    """A stand-in system store: a bundle with one 'system' CA, and an update
    command that must not run unless a test says so."""
    etc = tmp_path / "etc-ssl-certs"
    etc.mkdir()
    bundle = etc / "ca-certificates.crt"
    bundle.write_text(make_ca("system CA").cert_pem)
    return SystemStore(local_dir=tmp_path / "local", bundle=bundle, update=("false",))


def source(**fields) -> BuildSettings:
    """The build's settings of a source with these fields, as put hands them over."""
    from builder_resource.put import build_settings

    return build_settings(Source(repository="/tmp/store", **fields))


def prepare(src: BuildSettings, base: dict[str, str], store: SystemStore, **kwargs):
    kwargs.setdefault("builder", Buildah())
    return prepare_build(
        src, kwargs.pop("user_env", {}), base, probe=lambda _: None, system_store=store, **kwargs
    )


# --- Concourse's variables and the layering -------------------------------------


def test_build_variables_pass_through_and_pipeline_env_wins(system_store: SystemStore) -> None:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/root", **BUILD_VARS}
    user_env = {"VERSION": "1.2", "BUILDAH_LAYERS": "false"}
    with prepare(source(), base, system_store, user_env=user_env) as (builder, env):
        assert builder.name == "buildah"
        for name, value in base.items():
            assert env[name] == value
        assert env["DOCKER"] == "buildah" and env["BUILDER"] == "buildah"
        assert env["STORAGE_DRIVER"] == "vfs" and env["BUILDAH_ISOLATION"] == "chroot"
        assert env["VERSION"] == "1.2"
        assert env["BUILDAH_LAYERS"] == "false"


def test_img_build_gets_docker_img_and_a_private_state(system_store: SystemStore) -> None:
    with prepare(source(), {"HOME": "/root"}, system_store, builder=Img()) as (builder, env):
        assert env["DOCKER"] == "img" and env["BUILDER"] == "img"
        state = Path(env["IMG_STATE"])
        assert state.parent == Path(env["XDG_DATA_HOME"]) and state.parent.is_dir()
        assert not str(state).startswith("/root")
    assert not state.parent.exists()


# --- registry credentials -------------------------------------------------------


def test_registries_become_a_private_docker_config(system_store: SystemStore) -> None:
    src = source(
        registries=[
            {"host": "127.0.0.1:5000", "username": "builder", "password": PASSWORD},
            {"host": "https://docker.io/", "username": "hub", "password": "hub-pw"},
        ]
    )
    with prepare(src, {}, system_store) as (_, env):
        directory = Path(env["DOCKER_CONFIG"])
        config = directory / "config.json"
        assert (directory.stat().st_mode & 0o777) == 0o700
        assert (config.stat().st_mode & 0o777) == 0o600
        auths = json.loads(config.read_text())["auths"]
        assert set(auths) == {"127.0.0.1:5000", "https://index.docker.io/v1/"}
        assert base64.b64decode(auths["127.0.0.1:5000"]["auth"]).decode() == f"builder:{PASSWORD}"
        assert base64.b64decode(auths["https://index.docker.io/v1/"]["auth"]) == b"hub:hub-pw"
        assert "REGISTRY_AUTH_FILE" not in env  # buildah reads $DOCKER_CONFIG/config.json
    assert not config.exists() and not directory.exists()


def test_without_registries_the_config_is_empty_but_private(system_store: SystemStore) -> None:
    with prepare(source(), {}, system_store) as (_, env):
        config = Path(env["DOCKER_CONFIG"]) / "config.json"
        assert json.loads(config.read_text()) == {"auths": {}}


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("registry.example.org", "registry.example.org"),
        ("https://registry.example.org:5000/v2/", "registry.example.org:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("index.docker.io", "https://index.docker.io/v1/"),
        ("registry-1.docker.io", "https://index.docker.io/v1/"),
    ],
)
def test_auth_keys(host: str, key: str) -> None:
    assert auth_key(host) == key


def test_a_bad_registry_entry_is_named_without_its_password() -> None:
    entry = RegistryLogin(host="r.example.org", username="a:b", password=PASSWORD)
    with pytest.raises(ConfigError) as raised:
        docker_config([entry])
    assert "source.registries[0].username" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_no_secret_reaches_the_log(
    system_store: SystemStore, ca_pems: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    src = source(
        registries=[{"host": "127.0.0.1:5000", "username": "builder", "password": PASSWORD}],
        ca_certs=[ca_pems[0]],
    )
    with prepare(src, {"LOCAL_CA_CERTIFICATE": ca_pems[1]}, system_store) as (_, env):
        pass
    encoded = base64.b64encode(f"builder:{PASSWORD}".encode()).decode()
    assert caplog.records, "expected the environment to log what it set up"
    assert PASSWORD not in caplog.text and encoded not in caplog.text
    assert all(PASSWORD not in value for value in env.values())
    assert "127.0.0.1:5000" in caplog.text


# --- CA certificates ------------------------------------------------------------


def test_extra_cas_are_trusted_through_a_bundle_and_the_usual_variables(
    system_store: SystemStore, ca_pems: tuple[str, str]
) -> None:
    first, second = ca_pems
    src = source(ca_certs=[first])
    with prepare(src, {"LOCAL_CA_CERTIFICATE": second}, system_store) as (_, env):
        bundle = Path(env["SSL_CERT_FILE"])
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"):
            assert env[name] == str(bundle)
        text = bundle.read_text()
        assert text.startswith(system_store.bundle.read_text())  # system CAs kept
        assert first in text and second in text
        extra = Path(env["NODE_EXTRA_CA_CERTS"]).read_text()
        assert extra == first + second  # node adds these to its own list
    assert not bundle.exists()


def test_no_extra_cas_no_ca_variables(system_store: SystemStore) -> None:
    base = {"PATH": "/usr/bin"}
    with prepare(source(), base, system_store) as (_, env):
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
            assert name not in env


def test_the_pipeline_may_still_override_a_ca_variable(
    system_store: SystemStore, ca_pems: tuple[str, str]
) -> None:
    src = source(ca_certs=[ca_pems[0]])
    user_env = {"GIT_SSL_CAINFO": "/mine.crt"}
    with prepare(src, {}, system_store, user_env=user_env) as (_, env):
        assert env["GIT_SSL_CAINFO"] == "/mine.crt"
        assert env["SSL_CERT_FILE"] != "/mine.crt"


def test_a_value_with_several_certificates_and_duplicates(ca_pems: tuple[str, str]) -> None:
    first, second = ca_pems
    found = trusted_certificates([first + "\n" + second, first], {"LOCAL_CA_CERTIFICATE": second})
    assert found == [first, second]


def test_crlf_and_indentation_are_normalised(ca_pems: tuple[str, str]) -> None:
    first = ca_pems[0]
    mangled = "  " + first.replace("\n", "\r\n    ")
    assert trusted_certificates([mangled], {}) == [first]


@pytest.mark.parametrize(
    ("ca_certs", "env", "where"),
    [
        (["not a certificate"], {}, "source.ca_certs[0]"),
        ([], {"LOCAL_CA_CERTIFICATE": "junk"}, "LOCAL_CA_CERTIFICATE"),
        (
            ["-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"],
            {},
            "source.ca_certs[0]",
        ),
    ],
)
def test_a_bad_certificate_is_named(ca_certs: list[str], env: dict[str, str], where: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{where.replace('[', '.').replace(']', '.')}"):
        trusted_certificates(ca_certs, env)


def test_system_store_is_left_alone_unless_the_image_opts_in() -> None:
    assert not wants_system_install({}, euid=0)
    assert not wants_system_install({"BUILDER_RESOURCE_INSTALL_CAS": "1"}, euid=1000)
    assert wants_system_install({"BUILDER_RESOURCE_INSTALL_CAS": "1"}, euid=0)


def test_default_off_means_update_ca_certificates_never_runs(
    mocker, system_store: SystemStore, ca_pems: tuple[str, str], tmp_path: Path
) -> None:
    run = mocker.Mock()
    trust_extra_cas(tmp_path, [ca_pems[0]], {}, system_store=system_store, run=run)
    run.assert_not_called()
    assert not system_store.local_dir.exists()


def test_opted_in_the_cas_go_to_the_system_store_first(
    mocker, system_store: SystemStore, ca_pems: tuple[str, str], tmp_path: Path
) -> None:
    run = mocker.Mock(return_value=subprocess.CompletedProcess([], 0, "", ""))
    env = trust_extra_cas(
        tmp_path, [ca_pems[0]], {}, system_store=system_store, install=True, run=run
    )
    run.assert_called_once()
    assert run.call_args.args[0] == ["false"]
    (written,) = system_store.local_dir.iterdir()
    assert written.name.startswith("concourse-builder-img-") and written.suffix == ".crt"
    assert written.read_text() == ca_pems[0]
    assert Path(env["SSL_CERT_FILE"]).is_file()


def test_a_failing_update_is_one_line(
    mocker, system_store: SystemStore, ca_pems: tuple[str, str]
) -> None:
    run = mocker.Mock(return_value=subprocess.CompletedProcess([], 1, "", "boom\nopenssl: bad\n"))
    with pytest.raises(BuildError, match=r"system store: `false` failed .*: openssl: bad$"):
        install_into_system_store([ca_pems[0]], system_store, run)


@pytest.mark.skipif(
    shutil.which("update-ca-certificates") is None or shutil.which("openssl") is None,
    reason="Debian's update-ca-certificates not installed",
)
def test_real_update_ca_certificates_in_a_private_tree(
    tmp_path: Path, ca_pems: tuple[str, str]
) -> None:
    """Debian's script, every path redirected into tmp_path."""
    etc, share, hooks = tmp_path / "etc", tmp_path / "share", tmp_path / "hooks"
    for d in (etc, share, hooks):
        d.mkdir()
    conf = tmp_path / "ca-certificates.conf"
    conf.write_text("")
    store = SystemStore(
        local_dir=tmp_path / "local",
        bundle=etc / "ca-certificates.crt",
        update=(
            "update-ca-certificates",
            "--certsconf",
            str(conf),
            "--certsdir",
            str(share),
            "--localcertsdir",
            str(tmp_path / "local"),
            "--etccertsdir",
            str(etc),
            "--hooksdir",
            str(hooks),
        ),
    )
    env = trust_extra_cas(tmp_path / "work", list(ca_pems), {}, system_store=store, install=True)
    system_bundle = store.bundle.read_text()
    assert ca_pems[0] in system_bundle and ca_pems[1] in system_bundle
    # Linked by hash, as OpenSSL's CApath lookup wants.
    assert len([p for p in etc.iterdir() if p.name.endswith(".0")]) == 2
    # Our bundle is the system one, the CAs not repeated.
    assert Path(env["SSL_CERT_FILE"]).read_text() == system_bundle


def test_the_bundle_without_a_system_bundle(tmp_path: Path, ca_pems: tuple[str, str]) -> None:
    store = SystemStore(local_dir=tmp_path / "l", bundle=tmp_path / "none.crt", update=("false",))
    (tmp_path / "w").mkdir()
    env = trust_extra_cas(tmp_path / "w", [ca_pems[0]], {}, system_store=store, install=False)
    assert Path(env["SSL_CERT_FILE"]).read_text() == ca_pems[0]


# --- privileges -----------------------------------------------------------------


def test_probe_argv() -> None:
    assert privileges.probe_argv(0) == ["unshare", "--mount", "true"]
    assert privileges.probe_argv(1000) == [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "true",
    ]


def test_probe_passes_quietly(mocker) -> None:
    run = mocker.Mock(return_value=subprocess.CompletedProcess([], 0, "", ""))
    privileges.require_namespaces("buildah", run=run, euid=0, which=lambda _: "/usr/bin/unshare")
    assert run.call_args.args[0] == ["unshare", "--mount", "true"]


def test_probe_failure_is_one_line_naming_the_setting(mocker) -> None:
    failed = subprocess.CompletedProcess(
        [], 1, "", "unshare: unshare failed: Operation not permitted\n"
    )
    run = mocker.Mock(return_value=failed)
    with pytest.raises(BuildError) as raised:
        privileges.require_namespaces("img", run=run, euid=0, which=lambda _: "/usr/bin/unshare")
    message = str(raised.value)
    assert "\n" not in message
    assert "img builder needs to create namespaces" in message
    assert "Operation not permitted" in message
    assert "privileged: true" in message


def test_probe_without_unshare_lets_the_build_try(mocker) -> None:
    run = mocker.Mock()
    privileges.require_namespaces("buildah", run=run, which=lambda _: None)
    run.assert_not_called()


def test_user_namespace_detection(tmp_path: Path) -> None:
    identity, concourse = tmp_path / "identity", tmp_path / "fuse-only"
    identity.write_text("         0          0 4294967295\n")
    concourse.write_text("0 4294967294 1\n1 1 4294967293\n")
    assert not privileges.in_user_namespace(identity)
    assert privileges.in_user_namespace(concourse)
    assert not privileges.in_user_namespace(tmp_path / "missing")
    privileges.refuse_img_in_user_namespace(euid=0, uid_map=identity)
    privileges.refuse_img_in_user_namespace(euid=1000, uid_map=concourse)
    with pytest.raises(BuildError, match="fuse-only: set `source.builder: buildah`"):
        privileges.refuse_img_in_user_namespace(euid=0, uid_map=concourse)


def test_without_namespaces_img_too_is_told_privileged_true(
    mocker, tmp_path: Path, system_store: SystemStore
) -> None:
    """An unprivileged container has a user namespace and no way to make another:
    the refusal of img there would send the author to buildah, which fails there
    too; the one fix is `privileged: true`, so the probe speaks first."""
    mocker.patch("builder_resource.building.privileges.in_user_namespace", return_value=True)

    def no_namespaces(builder: str) -> None:
        raise BuildError(f"the {builder} builder needs to create namespaces: privileged: true")

    with (
        pytest.raises(BuildError, match="img builder needs to create namespaces"),
        prepare_build(
            source(builder="img"),
            {},
            {},
            probe=no_namespaces,
            system_store=system_store,
            builder=Img(),
        ),
    ):
        pass


def _can_drop_sys_admin() -> bool:
    if os.geteuid() != 0 or not (shutil.which("setpriv") and shutil.which("unshare")):
        return False
    done = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(not _can_drop_sys_admin(), reason="needs root with CAP_SYS_ADMIN and setpriv")
def test_real_probe_without_cap_sys_admin_names_privileged() -> None:
    """A container without privileges, as near as this machine gets: root
    without CAP_SYS_ADMIN, so unshare(CLONE_NEWNS) fails as it does under
    Concourse's unprivileged seccomp profile."""
    code = (
        "from builder_resource.building.privileges import require_namespaces\n"
        "from builder_resource.errors import BuildError\n"
        "try:\n    require_namespaces('buildah')\nexcept BuildError as e:\n    print(e)\n"
        "else:\n    print('passed')\n"
    )
    done = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-sys_admin",
            "--bounding-set=-sys_admin",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "resource")},
        check=True,
    )
    line = done.stdout.strip()
    assert line.startswith("the buildah builder needs to create namespaces"), line
    assert "Operation not permitted" in line and "privileged: true" in line
    assert "\n" not in line


def test_put_asks_the_probe_before_anything_else(mocker, system_store: SystemStore) -> None:
    probe = mocker.patch(
        "builder_resource.building.environment.require_namespaces",
        side_effect=BuildError("no namespaces"),
    )
    mkdtemp = mocker.spy(tempfile, "mkdtemp")
    with (
        pytest.raises(BuildError, match="no namespaces"),
        prepare_build(source(), {}, {}, builder=Buildah(), system_store=system_store),
    ):
        pytest.fail("the build must not start")
    probe.assert_called_once_with("buildah")
    mkdtemp.assert_not_called()
