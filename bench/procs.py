"""Running processes with a stopwatch: the resource as Concourse runs it, the peers
as a release engineer would, and the Python environment the resource runs in.

Wall time is measured around the whole process, from before ``Popen`` to its
exit. Peak RSS comes from GNU ``/usr/bin/time -f %M``: the rusage of a process we
fork ourselves would inherit this (large) Python's peak across ``exec`` (Linux
keeps the pre-exec high-water mark), while ``time`` is small.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.concourse import BUILD_ENV

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "opt" / "resource"
GNU_TIME = "/usr/bin/time"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"



class StepFailed(RuntimeError):
    """A process under measurement exited non-zero."""


@dataclass
class Timed:
    wall: float  # seconds
    rss_mib: float | None
    cpu: float | None  # user + system seconds (with rss)
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_timed(
    argv: list[str],
    *,
    stdin: bytes = b"",
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    rss: bool = True,
    timeout: float = 1800,
    check: bool = True,
) -> Timed:
    """Run ``argv`` to its end; wall seconds and (with ``rss``) peak RSS in MiB."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        rss_file = Path(scratch) / "rss"
        rss = rss and os.access(GNU_TIME, os.X_OK)  # without GNU time: no RSS, no CPU
        full = [GNU_TIME, "-f", "%M %U %S", "-o", str(rss_file), *argv] if rss else argv
        with open(Path(scratch) / "out", "w+b") as out, open(Path(scratch) / "err", "w+b") as err:
            start = time.perf_counter()
            process = subprocess.Popen(
                full, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=cwd, env=env
            )
            # A blocking wait: Popen.wait(timeout) polls with sleeps of up to 50 ms,
            # which rounded every measure up to the next step of its schedule.
            watchdog = threading.Timer(timeout, process.kill)
            watchdog.start()
            try:
                if stdin:
                    process.stdin.write(stdin)  # type: ignore[union-attr]
                process.stdin.close()  # type: ignore[union-attr]
                returncode = process.wait()
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                watchdog.cancel()
            wall = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        peak = cpu = None
        if rss and rss_file.is_file():
            # "Command exited with non-zero status N" may come first
            fields = (
                rss_file.read_text().splitlines()[-1:][0].split() if rss_file.stat().st_size else []
            )
            if len(fields) == 3 and fields[0].isdigit():
                peak = int(fields[0]) / 1024
                cpu = float(fields[1]) + float(fields[2])
    result = Timed(wall, peak, cpu, returncode, stdout, stderr)
    if check and returncode != 0:
        tail = "\n".join(stderr.splitlines()[-15:])
        raise StepFailed(f"{' '.join(argv[:3])}... exited {returncode}:\n{tail}")
    return result


def go_json(request: dict[str, Any]) -> bytes:
    """Marshal like the ATC: source, params, version; omit empty ones; no newline."""
    ordered: dict[str, Any] = {"source": request.get("source")}
    for key in ("params", "version"):
        if request.get(key):
            ordered[key] = request[key]
    return json.dumps(ordered, separators=(",", ":")).encode()


@dataclass
class Resource:
    """Runs ``opt/resource/{check,in,out}`` as Concourse does: a clean
    environment, ``$1`` the directory (and cwd), the request on stdin. ``tmp``
    (``TMPDIR``) stands for the container's own ``/tmp``: Concourse reuses a check
    container, so what check caches there survives from one check to the next."""

    python: str
    home: Path
    tmp: Path | None = None

    def with_tmp(self, tmp: Path) -> Resource:
        return Resource(self.python, self.home, tmp)

    def env(self, build: bool) -> dict[str, str]:
        env = {
            "PATH": SYSTEM_PATH,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "BUILDER_RESOURCE_PYTHON": self.python,
        }
        if self.tmp is not None:
            self.tmp.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(self.tmp)
        if build:
            env.update(BUILD_ENV)
        return env

    def run(
        self,
        step: str,
        request: dict[str, Any],
        directory: Path | None = None,
        rss: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> Timed:
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [str(SCRIPTS / step)]
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            argv.append(str(directory))
        return run_timed(
            argv,
            stdin=go_json(request),
            cwd=directory or self.home,
            env={**self.env(build=step != "check"), **(extra_env or {})},
            rss=rss,
        )


def peer_env(home: Path) -> dict[str, str]:
    """What skopeo, umoci and tar get: a clean environment too."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": SYSTEM_PATH, "HOME": str(home), "LANG": "C.UTF-8"}


# --- the resource's Python --------------------------------------------------------------


def project_dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


#: The interpreter the resource image runs: Debian's (the Dockerfile's venv stage).
IMAGE_PYTHON = "/usr/bin/python3"


def venv_base() -> str:
    """The image's interpreter where this machine has it (Debian's python3 and
    python3-venv), else this one. An interpreter built otherwise (this machine's
    pyenv one) imported the same modules some 12 % slower."""
    if os.path.exists(IMAGE_PYTHON):
        probe = subprocess.run(
            [IMAGE_PYTHON, "-c", "import ensurepip, venv"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return IMAGE_PYTHON
    return sys.executable


def ensure_venv(venv: Path, log: Any = print) -> Path:
    """A virtualenv like the resource image's, with the package's dependencies
    from PyPI at the image's pins (``resource/constraints.txt``; the package itself
    comes from the checkout: the wrapper scripts put ``resource/`` on
    ``PYTHONPATH``). Rebuilt when the interpreter, the dependencies or the pins
    change."""
    deps = project_dependencies()
    pins = ROOT / "resource" / "constraints.txt"
    base = venv_base()
    material = "\n".join([base, "without pip and setuptools", *deps, pins.read_text()])
    stamp = venv / (".deps-" + hashlib.sha256(material.encode()).hexdigest()[:12])
    python = venv / "bin" / "python"
    if stamp.is_file() and python.exists():
        return python
    log(f"creating {venv} from {base} with {', '.join(deps)} ...")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        + ["-c", str(pins), *deps],
        check=True,
    )
    # As the image's venv: setuptools' .pth file would cost every start an import.
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-y", "-q", "pip", "setuptools"], check=True
    )
    stamp.write_text("\n".join(deps) + "\n")
    return python


def python_description(python: str) -> str:
    """``3.11.7 (/path/to/python), isal 1.9.1, ...``: what the resource ran with."""
    code = (
        "import sys, importlib.metadata as m\n"
        "names = ('pydantic', 'requests', 'urllib3', 'isal', 'zstandard')\n"
        "def v(n):\n"
        "    try:\n        return m.version(n)\n"
        "    except Exception:\n        return 'missing'\n"
        "print(sys.version.split()[0], sys.prefix, *(f'{n}={v(n)}' for n in names))"
    )
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, env={"PATH": SYSTEM_PATH}
    )
    version, prefix, *packages = done.stdout.split()
    return f"Python {version} ({python}, prefix {prefix}); {' '.join(packages)}"


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return "missing"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def remove_tree(path: Path) -> None:
    """``rm -rf`` (faster than shutil.rmtree for big trees, and not timed anyway)."""
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)
