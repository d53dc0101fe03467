"""The img driver's command lines, exactly as img v0.5.11 takes them.

img cannot run on the test machines, so ``subprocess.run`` (or ``run_tool``) is
mocked and the argv is compared as a whole list against v0.5.11's CLI
(shared/reference/img.md): one image per ``img save``, ``--state`` naming the
directory the build's own img calls used, absolute ``-o``, ``-d`` only after the
subcommand, and a failure that names the image.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from builder_resource.building import img as img_module
from builder_resource.building.builders import choose_builder, default_builder_name
from builder_resource.building.img import Img, default_state_dir
from builder_resource.errors import BuildError

REF = "localhost/app:1"


def installed(*names: str):
    return lambda name: f"/usr/local/bin/{name}" if name in names else None


class FakeImg:
    """Stands in for ``subprocess.run``: records img's argv and writes what
    ``img save -o`` would; anything else runs for real."""

    def __init__(self, returncode: int = 0, write: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.returncode = returncode
        self.write = write
        self.real = subprocess.run

    def __call__(self, args, **kwargs):
        if not args or args[0] != "img":
            return self.real(args, **kwargs)
        self.calls.append(list(args))
        self.envs.append(dict(kwargs.get("env") or {}))
        if self.write and self.returncode == 0 and "-o" in args:
            Path(args[args.index("-o") + 1]).write_bytes(b"not really a tarball")
        return subprocess.CompletedProcess(args, self.returncode)


@pytest.fixture
def fake_img(mocker) -> FakeImg:
    fake = FakeImg()
    mocker.patch("builder_resource.building.command.subprocess.run", side_effect=fake)
    return fake


def test_save_argv_is_v0511_save_with_state_and_absolute_output() -> None:
    argv = Img().save_argv(REF, Path("/abs/out/app.tar"), {"XDG_DATA_HOME": "/state"})
    assert argv == ["img", "save", "--state", "/state/img", "-o", "/abs/out/app.tar", REF]


def test_save_image_runs_exactly_that_through_subprocess(fake_img: FakeImg, tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin"}
    destination = tmp_path / "out" / "app.tar"
    destination.parent.mkdir()
    Img().save_image(REF, destination, env)
    assert fake_img.calls == [
        ["img", "save", "--state", str(tmp_path / "data" / "img"), "-o", str(destination), REF]
    ]
    assert fake_img.envs == [env]
    assert destination.is_file()


def test_relative_destination_is_made_absolute(
    fake_img: FakeImg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "release").mkdir()
    Img().save_image(REF, Path("release/app.tar"), {"XDG_DATA_HOME": "/s"})
    assert fake_img.calls == [
        ["img", "save", "--state", "/s/img", "-o", str(tmp_path / "release" / "app.tar"), REF]
    ]


def test_save_argv_refuses_relative_destination() -> None:
    with pytest.raises(BuildError, match="not an absolute path"):
        Img().save_argv(REF, Path("out/app.tar"), {})


def test_an_existing_archive_is_replaced(fake_img: FakeImg, tmp_path: Path) -> None:
    destination = tmp_path / "app.tar"
    destination.write_bytes(b"stale")
    Img().save_image(REF, destination, {"XDG_DATA_HOME": "/s"})
    assert destination.read_bytes() == b"not really a tarball"


def test_debug_flag_goes_after_the_subcommand() -> None:
    argv = Img(debug=True).save_argv(REF, Path("/o/app.tar"), {"XDG_DATA_HOME": "/s"})
    assert argv == ["img", "save", "-d", "--state", "/s/img", "-o", "/o/app.tar", REF]


def test_failure_names_the_image_and_the_exit_status(mocker, tmp_path: Path) -> None:
    fake = FakeImg(returncode=1)
    mocker.patch("builder_resource.building.command.subprocess.run", side_effect=fake)
    with pytest.raises(BuildError) as raised:
        Img().save_image(REF, tmp_path / "app.tar", {"XDG_DATA_HOME": "/s"})
    message = str(raised.value)
    assert message.startswith(f"saving image {REF}: ")
    assert "exit status 1" in message
    assert "\n" not in message
    assert len(fake.calls) == 1


def test_success_without_an_archive_is_an_error(mocker, tmp_path: Path) -> None:
    mocker.patch(
        "builder_resource.building.command.subprocess.run", side_effect=FakeImg(write=False)
    )
    with pytest.raises(BuildError, match=f"saving image {REF}: img wrote no"):
        Img().save_image(REF, tmp_path / "app.tar", {"XDG_DATA_HOME": "/s"})


def test_img_missing_is_an_error_naming_the_image(mocker, tmp_path: Path) -> None:
    mocker.patch(
        "builder_resource.building.command.subprocess.run",
        side_effect=FileNotFoundError(2, "No such file or directory", "img"),
    )
    with pytest.raises(BuildError, match=f"saving image {REF}: could not run img"):
        Img().save_image(REF, tmp_path / "app.tar", {})


def test_a_reference_that_looks_like_a_flag_is_refused(mocker, tmp_path: Path) -> None:
    run_tool = mocker.patch.object(img_module, "run_tool")
    with pytest.raises(BuildError, match="not an image reference"):
        Img().save_image("--help", tmp_path / "x.tar", {})
    run_tool.assert_not_called()


@pytest.mark.parametrize(
    ("env", "state"),
    [
        ({"XDG_DATA_HOME": "/x", "HOME": "/home/u"}, "/x/img"),
        ({"HOME": "/home/u"}, "/home/u/.local/share/img"),
        ({"XDG_DATA_HOME": "", "HOME": "/root"}, "/root/.local/share/img"),
        ({}, "/tmp/img"),
    ],
)
def test_default_state_dir_follows_img(env: dict[str, str], state: str) -> None:
    assert default_state_dir(env) == Path(state)


def test_environment_points_img_default_state_at_a_private_dir(tmp_path: Path) -> None:
    env = Img().environment(tmp_path / "builder")
    assert env["DOCKER"] == "img"
    assert env["BUILDER"] == "img"
    data = tmp_path / "builder" / "data"
    assert env["XDG_DATA_HOME"] == str(data)
    assert env["IMG_STATE"] == str(data / "img")
    assert data.is_dir() and (data.stat().st_mode & 0o777) == 0o700
    # A Makefile's plain `img build` (no --state) and our save agree on one store.
    assert default_state_dir(env) == Path(env["IMG_STATE"])
    saved = Img().save_argv(REF, Path("/o/app.tar"), env)
    assert saved[saved.index("--state") + 1] == env["IMG_STATE"]


def test_rootless_img_gets_a_private_runtime_dir(mocker, tmp_path: Path) -> None:
    mocker.patch.object(img_module.os, "geteuid", return_value=1000)
    env = Img().environment(tmp_path)
    runtime = Path(env["XDG_RUNTIME_DIR"])
    assert runtime == tmp_path / "run" and (runtime.stat().st_mode & 0o777) == 0o700


def test_root_img_keeps_the_default_runtime_dir(mocker, tmp_path: Path) -> None:
    mocker.patch.object(img_module.os, "geteuid", return_value=0)
    assert "XDG_RUNTIME_DIR" not in Img().environment(tmp_path)


def test_the_pipeline_env_may_move_the_state_and_the_save_follows(tmp_path: Path) -> None:
    env = {**Img().environment(tmp_path), "XDG_DATA_HOME": "/elsewhere"}
    argv = Img().save_argv(REF, Path("/o/app.tar"), env)
    assert argv[argv.index("--state") + 1] == "/elsewhere/img"


def test_img_is_the_default_where_installed_and_root_is_real_root() -> None:
    assert default_builder_name(installed("img", "buildah"), False) == "img"
    assert default_builder_name(installed("img", "buildah"), True) == "buildah"
    assert default_builder_name(installed("buildah"), False) == "buildah"


def test_the_default_choice_is_explained_in_one_line(mocker, caplog) -> None:
    mocker.patch("builder_resource.building.builders.in_user_namespace", return_value=False)
    with caplog.at_level(logging.INFO, logger="builder_resource.building.builders"):
        assert choose_builder(None, which=installed("buildah")).name == "buildah"
        assert choose_builder(None, which=installed("img", "buildah")).name == "img"
        assert choose_builder("buildah", which=installed("img", "buildah")).name == "buildah"
    assert [r.getMessage() for r in caplog.records] == [
        "builder: buildah, as source.builder is unset and img is not installed",
        "builder: img, as source.builder is unset and installed, and root is real root",
    ]


def test_choosing_img_when_it_is_not_installed_says_so() -> None:
    with pytest.raises(BuildError, match="builder img: img is not installed"):
        choose_builder("img", which=installed("buildah"))


def test_choose_img_passes_debug() -> None:
    builder = choose_builder("img", debug=True, which=installed("img"))
    assert isinstance(builder, Img) and builder.debug


# --- put with img: one `img save` per image, into the build's own store ----------


def git_free_context(root: Path) -> Path:
    context = root / "src"
    context.mkdir(parents=True)
    return context


def test_put_with_img_saves_each_image_with_its_own_call(
    mocker, tmp_path: Path, fake_img: FakeImg
) -> None:
    from builder_resource import put

    mocker.patch("builder_resource.building.builders.shutil.which", side_effect=installed("img"))
    mocker.patch("builder_resource.building.environment.refuse_img_in_user_namespace")
    mocker.patch("builder_resource.building.environment.require_namespaces")
    context = git_free_context(tmp_path / "put")
    # The build records the environment img would have run in.
    command = "mkdir -p release && env > release/build.env"
    payload = {
        "source": {
            "repository": str(tmp_path / "store"),
            "builder": "img",
            "images": ["localhost/team/app:1.0", "localhost/worker:1.0"],
            "command": command,
        },
        "params": {"context": "src", "version": "1.0.0"},
    }
    result = put.run(payload, tmp_path / "put", {"PATH": os.environ["PATH"], "HOME": "/root"})

    assert result["version"]["tag"] == "1.0.0"
    assert {"name": "builder", "value": "img"} in result["metadata"]
    recorded = dict(
        line.split("=", 1)
        for line in (context / "release" / "build.env").read_text().splitlines()
        if "=" in line
    )
    assert recorded["DOCKER"] == "img" and recorded["BUILDER"] == "img"
    state = recorded["IMG_STATE"]
    assert state == recorded["XDG_DATA_HOME"] + "/img"
    release = context / "release"
    assert fake_img.calls == [
        ["img", "save", "--state", state, "-o", str(release / "app.tar"), "localhost/team/app:1.0"],
        [
            "img",
            "save",
            "--state",
            state,
            "-o",
            str(release / "worker.tar"),
            "localhost/worker:1.0",
        ],
    ]
    # The state directory was private to the put, and is gone with it.
    assert not Path(state).exists()


def test_put_with_img_fails_in_one_line_naming_the_image(mocker, tmp_path: Path) -> None:
    from builder_resource import put

    mocker.patch(
        "builder_resource.building.command.subprocess.run", side_effect=FakeImg(returncode=1)
    )
    mocker.patch("builder_resource.building.builders.shutil.which", side_effect=installed("img"))
    mocker.patch("builder_resource.building.environment.refuse_img_in_user_namespace")
    mocker.patch("builder_resource.building.environment.require_namespaces")
    git_free_context(tmp_path / "put")
    payload = {
        "source": {
            "repository": str(tmp_path / "store"),
            "builder": "img",
            "images": ["localhost/app:2"],
            "command": "true",
        },
        "params": {"context": "src", "version": "2"},
    }
    with pytest.raises(BuildError) as raised:
        put.run(payload, tmp_path / "put", {"PATH": os.environ["PATH"]})
    assert "saving image localhost/app:2" in str(raised.value)
    assert "\n" not in str(raised.value)
