"""The SLSA v1 provenance of a put (slsa.dev/spec/v1.0/provenance), as the
predicate of an in-toto statement whose subject is the version's index::

    {"buildDefinition": {
        "buildType": BUILD_TYPE,
        "externalParameters": {"command", "output", "source": {"uri", "revision"},
                               "params": the put's params, env values left out,
                               "repository"},
        "internalParameters": {"builder"},
        "resolvedDependencies": [the git checkout; each image's base images]},
     "runDetails": {
        "builder": {"id": the Concourse job's URL (or team/pipeline/job)},
        "metadata": {"invocationId": the build's URL, "startedOn", "finishedOn"}}}

Never a secret: environment variables appear by name only (their values are
often ``((credentials))``), source credentials and keys not at all.

Base images are read where builders record them: the OCI annotations
``org.opencontainers.image.base.name``/``.base.digest`` on the image manifest
(buildah, image-spec ``annotations.md``), and BuildKit's
``moby.buildkit.buildinfo.v1`` (base64 JSON, ``sources`` of type docker-image with
their ``pin``) in the image config. A docker-archive keeps neither: its base
images are then unknown, and the provenance says nothing of them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .statement import statement

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:concourse-builder-img:put:v1"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
BUILDINFO = "moby.buildkit.buildinfo.v1"


@dataclass(frozen=True)
class BuiltImage:
    name: str
    manifest_digest: str
    manifest_annotations: dict[str, str]
    config: bytes


@dataclass(frozen=True)
class PutFacts:
    """What a put knows of itself, as plain values."""

    repository: str
    tag: str
    command: str
    output: str
    params: dict[str, Any]  # the put's params, env values already left out
    builder: str
    git_remote: str | None
    git_revision: str | None
    concourse: dict[str, str]  # team, pipeline, job, name, url, external_url
    started: datetime
    finished: datetime
    images: list[BuiltImage] = field(default_factory=list)


def provenance_statement(facts: PutFacts, index_digest: str) -> bytes:
    return statement(
        [(f"{facts.repository}:{facts.tag}", index_digest)], PREDICATE_TYPE, predicate(facts)
    )


def predicate(facts: PutFacts) -> dict[str, Any]:
    source: dict[str, str] = {}
    if facts.git_remote:
        source["uri"] = facts.git_remote
    if facts.git_revision:
        source["revision"] = facts.git_revision
    external: dict[str, Any] = {
        "repository": facts.repository,
        "command": facts.command,
        "output": facts.output,
        "params": facts.params,
    }
    if source:
        external["source"] = source
    metadata: dict[str, str] = {
        "startedOn": _time(facts.started),
        "finishedOn": _time(facts.finished),
    }
    if facts.concourse.get("url"):
        metadata["invocationId"] = facts.concourse["url"]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"builder": facts.builder},
            "resolvedDependencies": resolved_dependencies(facts),
        },
        "runDetails": {"builder": {"id": builder_id(facts.concourse)}, "metadata": metadata},
    }


def builder_id(concourse: dict[str, str]) -> str:
    """The Concourse job that ran the put, as a URL where the ATC's is known."""
    team, pipeline, job = (concourse.get(k, "") for k in ("team", "pipeline", "job"))
    base = concourse.get("external_url", "").rstrip("/")
    if base and team and pipeline and job:
        return f"{base}/teams/{team}/pipelines/{pipeline}/jobs/{job}"
    if team or pipeline or job:
        return f"concourse:{team}/{pipeline}/{job}"
    return "concourse-builder-img:local"  # run outside Concourse (make release, tests)


def resolved_dependencies(facts: PutFacts) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if facts.git_remote and facts.git_revision:
        found.append(
            {"uri": f"git+{facts.git_remote}", "digest": {"gitCommit": facts.git_revision}}
        )
    for image in facts.images:
        for name, digest in base_images(image):
            algorithm, _, hex_ = digest.partition(":")
            entry: dict[str, Any] = {"digest": {algorithm: hex_}}
            entry["uri"] = f"docker://{name}" if name else f"docker://@{digest}"
            entry["annotations"] = {"image": image.name}
            if entry not in found:
                found.append(entry)
    return found


def base_images(image: BuiltImage) -> list[tuple[str, str]]:
    """(name, digest) of each base image the builder recorded; name may be ''."""
    found: list[tuple[str, str]] = []
    digest = image.manifest_annotations.get(BASE_DIGEST, "")
    if digest.startswith("sha256:"):
        found.append((image.manifest_annotations.get(BASE_NAME, ""), digest))
    found += _buildkit_sources(image.config)
    return list(dict.fromkeys(found))


def _buildkit_sources(config: bytes) -> list[tuple[str, str]]:
    try:
        encoded = json.loads(config).get(BUILDINFO)
        if not encoded:
            return []
        sources = json.loads(base64.b64decode(encoded)).get("sources") or []
    except (ValueError, AttributeError, TypeError):
        return []
    return [
        (str(s.get("ref", "")), str(s["pin"]))
        for s in sources
        if isinstance(s, dict)
        and s.get("type") == "docker-image"
        and str(s.get("pin", "")).startswith("sha256:")
    ]


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
