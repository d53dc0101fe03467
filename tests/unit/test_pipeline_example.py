"""pipeline-example.yml parses, and everything in it that this resource reads is
valid by the resource's own models: each builder resource's ``source`` as
:class:`Source`, each put's ``params`` as :class:`PutParams`, each get's (and
put's ``get_params``) as :class:`GetParams`. ``((vars))`` become placeholder
strings first, as a credential manager would fill them.

It also checks that the pipeline shows what it claims: the type declared once and
privileged, a git source, a put that builds, a downstream get with ``rootfs``
whose image runs a task, and a put of one image tarball to a registry-image.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from builder_resource.config import GetParams, PutParams, Source

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline-example.yml"
VAR = re.compile(r"\(\(([^()]+)\)\)")
# Keys under which Concourse nests steps.
NESTED = ("do", "in_parallel", "aggregate", "steps")
HOOKS = ("on_success", "on_failure", "on_error", "on_abort", "ensure", "try")


def fill_vars(value: Any) -> Any:
    """``((registry.host))/x`` -> ``registry-host/x``: any string will do."""
    if isinstance(value, str):
        return VAR.sub(lambda m: re.sub(r"[^a-z0-9]+", "-", m.group(1).lower()), value)
    if isinstance(value, list):
        return [fill_vars(v) for v in value]
    if isinstance(value, dict):
        return {k: fill_vars(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def pipeline() -> dict:
    raw = yaml.safe_load(PIPELINE.read_text())
    assert isinstance(raw, dict)
    return fill_vars(raw)


def steps(plan: list[dict]) -> Iterator[dict]:
    """Every step of a plan, nested ones included, in order."""
    for step in plan:
        yield step
        for key in NESTED:
            nested = step.get(key)
            if isinstance(nested, dict):  # in_parallel: {steps: [...]}
                nested = nested.get("steps", [])
            if isinstance(nested, list):
                yield from steps(nested)
        for key in HOOKS:
            if isinstance(step.get(key), dict):
                yield from steps([step[key]])


def resource_of(step: dict) -> str:
    return step.get("resource") or step.get("get") or step["put"]


def builder_resources(pipeline: dict) -> dict[str, dict]:
    types = {t["name"] for t in pipeline["resource_types"] if t["name"] == "builder"}
    return {r["name"]: r for r in pipeline["resources"] if r["type"] in types}


def test_the_resource_type_is_declared_once_and_privileged(pipeline: dict) -> None:
    declared = [t for t in pipeline["resource_types"] if t["name"] == "builder"]
    assert len(declared) == 1
    (builder,) = declared
    assert builder["type"] == "registry-image"
    assert builder["privileged"] is True
    assert builder["source"]["repository"]


def test_every_builder_source_is_a_valid_source(pipeline: dict) -> None:
    builders = builder_resources(pipeline)
    assert builders
    for name, resource in builders.items():
        source = Source.model_validate(resource["source"])
        assert source.repository, name


def test_every_builder_step_has_valid_params(pipeline: dict) -> None:
    builders = builder_resources(pipeline)
    checked = 0
    for job in pipeline["jobs"]:
        for step in steps(job["plan"]):
            if ("get" not in step and "put" not in step) or resource_of(step) not in builders:
                continue
            if "put" in step:
                PutParams.model_validate(step.get("params") or {})
                GetParams.model_validate(step.get("get_params") or {})
            else:
                GetParams.model_validate(step.get("params") or {})
            checked += 1
    assert checked >= 3


def test_a_typo_would_be_caught(pipeline: dict) -> None:
    """The check above is not vacuous: an unknown key fails."""
    source = dict(next(iter(builder_resources(pipeline).values()))["source"])
    source["repositry"] = source.pop("repository")
    with pytest.raises(ValidationError):
        Source.model_validate(source)
    with pytest.raises(ValidationError):
        GetParams.model_validate({"root_fs": True})


def test_references_resolve(pipeline: dict) -> None:
    resources = {r["name"]: r for r in pipeline["resources"]}
    types = {t["name"] for t in pipeline["resource_types"]} | {"git", "registry-image"}
    jobs = {j["name"] for j in pipeline["jobs"]}
    for resource in resources.values():
        assert resource["type"] in types
    for job in pipeline["jobs"]:
        for step in steps(job["plan"]):
            if "get" in step or "put" in step:
                assert resource_of(step) in resources
            for upstream in step.get("passed", []):
                assert upstream in jobs


def test_the_pipeline_shows_the_whole_flow(pipeline: dict) -> None:
    resources = {r["name"]: r for r in pipeline["resources"]}
    builders = builder_resources(pipeline)
    git = {n for n, r in resources.items() if r["type"] == "git"}
    registry_images = {n for n, r in resources.items() if r["type"] == "registry-image"}
    assert git and registry_images

    built = rootfs_task = shipped = False
    for job in pipeline["jobs"]:
        plan = list(steps(job["plan"]))
        gets = {s["get"]: s for s in plan if "get" in s}
        # a git source feeding a put that builds
        if any(g in git for g in gets):
            for step in plan:
                if "put" in step and resource_of(step) in builders:
                    assert step["params"]["context"] in gets
                    built = True
        for name, get in gets.items():
            if resource_of(get) not in builders:
                continue
            wanted = (get.get("params") or {}).get("rootfs")
            # a downstream get with rootfs whose image runs a task
            for task in (s for s in plan if "task" in s and "image" in s):
                prefix = f"{name}/images/"
                if task["image"].startswith(prefix) and wanted:
                    image = task["image"][len(prefix) :]
                    assert wanted is True or image in wanted
                    assert get.get("passed")
                    rootfs_task = True
            # a put of one image tarball to a registry-image resource
            for put in (s for s in plan if "put" in s and resource_of(s) in registry_images):
                tarball = put["params"]["image"]
                assert tarball.startswith(f"{name}/release/") and tarball.endswith(".tar")
                assert "*" not in tarball
                shipped = True
    assert built and rootfs_task and shipped
