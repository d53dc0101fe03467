"""Debian's ``docker-registry`` (distribution 2.8) as a process on 127.0.0.1:
write its config, start it, wait until it answers, stop it. Shared by the tests'
registries (tests/fixtures/registry.py) and the benchmark's (bench/registry.py),
which both import this package and never each other.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REGISTRY_BIN = "docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(
    root: Path,
    host: str,
    *,
    http: dict | None = None,
    auth: dict | None = None,
    quiet: bool = True,
    secret: str = "builder-resource-bench",
) -> tuple[subprocess.Popen, Path]:
    """Write a config for ``host`` (``http`` adds to its ``http`` section, e.g.
    TLS; ``auth`` is its ``auth`` section) and start docker-registry; storage,
    config and log live under ``root``. Returns the process and its log's path."""
    root.mkdir(parents=True, exist_ok=True)
    log_config = (
        {"level": "error", "formatter": "text", "accesslog": {"disabled": True}}
        if quiet
        else {"level": "info", "formatter": "text", "accesslog": {"disabled": False}}
    )
    config: dict = {
        "version": 0.1,
        "log": log_config,
        "storage": {
            "filesystem": {"rootdirectory": str(root / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": host, "secret": secret, **(http or {})},
    }
    if auth:
        config["auth"] = auth
    config_path = root / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    log = root / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [shutil.which(REGISTRY_BIN) or REGISTRY_BIN, "serve", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, log


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a registry; kill it if it has not ended within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_answering(
    url: str, process: subprocess.Popen, log: Path, timeout: float = 20.0
) -> None:
    """Poll ``GET /v2/`` (any HTTP answer, 401 included, will do; TLS unverified)
    until the registry answers; RuntimeError with its log's tail if it exits or
    stays silent."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            urllib.request.urlopen(f"{url}/v2/", timeout=1, context=context).close()
            return
        except urllib.error.HTTPError:
            return  # 401: it answers
        except OSError:
            pass
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"docker-registry did not answer within {timeout} s:\n{tail}")
        time.sleep(0.02)
