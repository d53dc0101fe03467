"""Fresh registries for the benchmark: Debian's ``docker-registry`` (distribution
2.8) on 127.0.0.1, a free port, plain HTTP, its storage in a directory of its own.

Quiet (no access log) so that logging costs neither side CPU. Starting and
stopping the process is harness/registry.py's, shared with the tests.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.registry import free_port, launch, stop_process, wait_until_answering

REGISTRY_BIN = "docker-registry"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


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
