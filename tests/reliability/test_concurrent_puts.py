"""Versions are immutable: of two puts of one new version running at once, exactly
one publishes it, and the other fails in one line naming the winner's digest. On a
layout the tag is decided under its lock; on a registry, by a check right before
the tag is written and a read-back after it (distribution has no conditional PUT)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder_resource.errors import TagTakenError
from builder_resource.oci import media_types as mt
from builder_resource.store.registry import RegistryStore
from fixtures.concourse import SCRIPTS, Concourse, clean_env, go_json
from fixtures.http_fakes import Fault
from fixtures.registry_content import make_version

pytestmark = pytest.mark.integration

#: Long enough that both puts have passed put's first check before either tags.
COMMAND = "sleep 1 && mkdir -p release && echo $WHO > release/who.txt"


def start_put(concourse: Concourse, source: dict, sources: Path, who: str) -> subprocess.Popen:
    (sources / "src").mkdir(parents=True, exist_ok=True)
    params = {"context": "src", "command": COMMAND, "version": "1.0.0", "env": {"WHO": who}}
    request = sources / "request.json"
    request.write_bytes(go_json({"source": source, "params": params}))
    with open(request, "rb") as stdin:
        return subprocess.Popen(
            [str(SCRIPTS / "out"), str(sources)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=sources,
            env=clean_env(concourse.home, build=True),
        )


def race(concourse: Concourse, sources: dict[str, dict], tmp_path: Path) -> tuple[dict, str]:
    """Run two puts of version 1.0.0 at once; return the winner's version and the
    loser's error line, having checked that exactly one won."""
    runs = {
        who: start_put(concourse, source, tmp_path / who, who) for who, source in sources.items()
    }
    results = {}
    for who, process in runs.items():
        out, err = process.communicate(timeout=120)
        results[who] = (process.returncode, out.decode(), err.decode())
    winners = [who for who, (code, _, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    loser = next(who for who in results if who not in winners)
    code, out, err = results[loser]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 1 and out == "" and len(errors) == 1, results[loser]
    return json.loads(results[winners[0]][1])["version"], errors[0]


def test_two_puts_on_a_layout(concourse: Concourse, tmp_path: Path) -> None:
    source = {"repository": str(tmp_path / "store")}
    won, error = race(concourse, {"a": source, "b": source}, tmp_path)
    assert f"by another put, as {won['digest']}" in error
    assert concourse.check(source) == [won]


def test_two_puts_on_a_registry(
    concourse: Concourse, registry, fault_proxy, repo_name: str, tmp_path: Path
) -> None:
    """b's check right before its tag is slow (the proxy holds it 2 s): a tags
    first, and b, finding the tag taken, fails instead of moving it."""
    direct = {"repository": f"{registry.host}/{repo_name}", "insecure": True}
    slow = {"repository": f"{fault_proxy.host}/{repo_name}", "insecure": True}
    # skip=1: put's first check of the tag, before the build, passes untouched.
    fault_proxy.add(Fault("HEAD", r"/manifests/1\.0\.0$", "delay", delay=2.0, skip=1))
    won, error = race(concourse, {"a": direct, "b": slow}, tmp_path)
    assert f"by another put, as {won['digest']}" in error
    assert concourse.check(direct) == [won]
    assert sum(1 for s in fault_proxy.seen if s.faulted == "delay") == 1


def test_a_registry_put_whose_tag_is_overwritten_fails(registry, repo_name, mocker) -> None:
    """The read-back: another put's tag lands right after ours; ours fails naming it."""
    ours, theirs = make_version("ours"), make_version("theirs")
    with RegistryStore(f"{registry.host}/{repo_name}", insecure=True) as store:
        for version in (ours, theirs):
            version.push(store, ours.index_digest if version is ours else theirs.index_digest)
        push = store.push_manifest

        def then_theirs(content: bytes, media_type: str, reference: str) -> str:
            digest = push(content, media_type, reference)
            if reference == "1.0.0":
                push(theirs.index, mt.OCI_INDEX, "1.0.0")  # the other put, a moment later
            return digest

        mocker.patch.object(store, "push_manifest", side_effect=then_theirs)
        with pytest.raises(TagTakenError) as raised:
            store.tag_once("1.0.0", ours.index, mt.OCI_INDEX)
        assert raised.value.holder == theirs.index_digest
        assert store.resolve_tag("1.0.0") == theirs.index_digest
