"""Fresh registries for the benchmark: Debian's ``docker-registry`` (distribution
2.8) on 127.0.0.1, a free port, plain HTTP, its storage in a directory of its own.

Quiet (no access log) so that logging costs neither side CPU. ``launch`` and
``wait_until_answering`` and ``stop_process`` also serve the tests' registries
(tests/fixtures/registry.py) and bench/check_timing.py.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY_BIN = "docker-registry"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    host: str  # 127.0.0.1:port
    root: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the registry process has used so far."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, remove: bool = True) -> None:
        """Stop the registry and, by default, remove its storage."""
        stop_process(self.process)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def get_manifest(self, repository: str, reference: str, accept: str = OCI_INDEX) -> bytes:
        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{reference}", headers={"Accept": accept}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def list_tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(f"{self.url}/v2/{repository}/tags/list", timeout=30) as r:
            return json.loads(r.read()).get("tags") or []

    def put_manifests(
        self, repository: str, references: list[str], body: bytes, media_type: str = OCI_INDEX
    ) -> None:
        """PUT the same manifest under each reference, on one keep-alive connection."""
        connection = http.client.HTTPConnection(self.host, timeout=30)
        try:
            for reference in references:
                connection.request(
                    "PUT",
                    f"/v2/{repository}/manifests/{reference}",
                    body=body,
                    headers={"Content-Type": media_type},
                )
                response = connection.getresponse()
                response.read()
                if response.status != 201:
                    raise RuntimeError(f"PUT manifest {reference}: HTTP {response.status}")
        finally:
            connection.close()


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
    config and log live under ``root``. Returns the process and its log's path.
    Shared with tests/fixtures/registry.py."""
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
    """Terminate a registry; kill it if it has not ended within 10 s. Shared with
    tests/fixtures/registry.py and bench/check_timing.py."""
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


def start_registry(root: Path, timeout: float = 20.0) -> Registry:
    """Start a quiet, plain-HTTP docker-registry under ``root`` and wait until
    ``GET /v2/`` answers."""
    host = f"127.0.0.1:{free_port()}"
    process, log = launch(root, host)
    registry = Registry(host, root, process)
    try:
        wait_until_answering(registry.url, process, log, timeout)
    except RuntimeError:
        registry.stop()
        raise
    return registry
