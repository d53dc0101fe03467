"""Never a half version: every tag a store shows is a complete version, read
straight from the store (not through the resource): the index, each manifest it
names, each blob they name, present and hashing to its digest."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def _children(manifest: dict) -> tuple[list[dict], list[dict]]:
    """(manifests, blobs) a manifest or index names."""
    if "manifests" in manifest:
        return manifest["manifests"], []
    blobs = [manifest["config"], *manifest.get("layers", [])]
    return [], blobs


def _check_digest(data: bytes, digest: str, what: str) -> None:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    assert actual == digest, f"{what}: {digest} holds {actual}"


def assert_every_tag_complete(base_url: str, repository: str) -> int:
    """Registry: walk every tag; return how many versions were checked."""

    def get(path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(f"{base_url}/v2/{repository}/{path}", method=method)
        request.add_header("Accept", ACCEPT)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    try:
        tags = json.loads(get("tags/list")).get("tags") or []
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return 0
        raise
    for tag in tags:
        todo = [json.loads(get(f"manifests/{tag}"))]
        while todo:
            children, blobs = _children(todo.pop())
            for child in children:
                data = get(f"manifests/{child['digest']}")
                _check_digest(data, child["digest"], f"{repository}:{tag}")
                todo.append(json.loads(data))
            for blob in blobs:
                get(f"blobs/{blob['digest']}", method="HEAD")  # 404 raises
    return len(tags)


def assert_every_layout_tag_complete(root: Path) -> int:
    """OCI layout: the same walk over index.json and blobs/sha256."""
    index_path = root / "index.json"
    if not index_path.exists():
        return 0
    tagged = json.loads(index_path.read_text())["manifests"]

    def blob(digest: str) -> bytes:
        data = (root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        _check_digest(data, digest, str(root))
        return data

    for entry in tagged:
        todo = [json.loads(blob(entry["digest"]))]
        while todo:
            children, blobs = _children(todo.pop())
            todo.extend(json.loads(blob(child["digest"])) for child in children)
            for item in blobs:
                blob(item["digest"])
    return len(tagged)
