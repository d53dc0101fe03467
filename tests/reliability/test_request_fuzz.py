"""A fuzz of the request schema: every invalid request gets one `error:` line that is
not an internal error, exit 1, and nothing on stdout. Seeded mutations of valid
requests, each made invalid on purpose, plus the cases found by hand (JSON nested
thousands deep, `/dev/null` as the repository, a 5,000-character path, NUL bytes,
an env key holding `=`)."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from builder_resource import cli

from .conftest import FIGURES, SCALE, SEED

VERSION = {"tag": "1.0.0", "digest": "sha256:" + "a" * 64}


def valid_requests(store: str) -> dict[str, dict[str, Any]]:
    source = {"repository": store}
    return {
        "check": {"source": source, "version": VERSION},
        "in": {"source": source, "version": VERSION, "params": {"rootfs": True}},
        "out": {"source": source, "params": {"context": "src", "version": "1.0.0"}},
    }


# Each turns a valid request into an invalid one, whatever else is changed.
def _unknown_key(r: dict, rng: random.Random) -> None:
    r.setdefault("source", {})[rng.choice(["repositry", "tags", "x" * 300, "\x00"])] = 1


def _wrong_type(r: dict, rng: random.Random) -> None:
    r["source"]["repository"] = rng.choice([1, 2.5, [], {}, True, ["a"], {"a": 1}])


def _no_repository(r: dict, rng: random.Random) -> None:
    r["source"].pop("repository", None)


def _nul_in_repository(r: dict, rng: random.Random) -> None:
    r["source"]["repository"] = "/tmp/store\x00evil"


def _long_repository(r: dict, rng: random.Random) -> None:
    r["source"]["repository"] = "/" + "x" * rng.choice([5000, 70000])


def _device_repository(r: dict, rng: random.Random) -> None:
    r["source"]["repository"] = rng.choice(["/dev/null", "/dev/null/store", "file:///dev/zero"])


def _bad_env(r: dict, rng: random.Random) -> None:
    r["source"]["env"] = rng.choice(
        [{"A=B": "c"}, {"A": "b\x00c"}, {"": "x"}, {"A": 1}, ["A=B"], {"\x00": "x"}]
    )


def _bad_version(r: dict, rng: random.Random) -> None:
    r["version"] = rng.choice(
        [{"tag": "x"}, {"digest": "sha256:zz"}, "1.0.0", [], {"tag": 1, "digest": 2}]
    )
    r["source"]["tag_regex"] = rng.choice(["(", "[a-", "*"])


def _bad_params(r: dict, rng: random.Random) -> None:
    r["params"] = rng.choice([[], "x", 1, {"context": "\x00"}, {"rootfs": "maybe", "x": 1}])


MUTATIONS = [
    _unknown_key,
    _wrong_type,
    _no_repository,
    _nul_in_repository,
    _long_repository,
    _device_repository,
    _bad_env,
    _bad_version,
    _bad_params,
]

TEXTS = [
    "[" * 5000 + "]" * 5000,
    '{"source": ' * 3000 + "{}" + "}" * 3000,
    "null",
    "[]",
    '"source"',
    "{",
    "\x00",
    '{"source": {"repository": "/x"}} trailing',
    json.dumps({"source": {"repository": "/x"}, "params": {"context": "."}}) * 2,
]


def run_cli(step: str, text: str, directory: Path) -> tuple[int, str, str]:
    argv = [step] + ([str(directory)] if step != "check" else [])
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(text), io.StringIO(), io.StringIO()
    try:
        code = cli.main(argv)
        return code, sys.stdout.getvalue(), sys.stderr.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr


def assert_refused(step: str, text: str, directory: Path) -> None:
    code, out, err = run_cli(step, text, directory)
    shown = text[:200].encode("unicode_escape").decode()
    assert code == 1, f"{step} exit {code} for {shown}: {err[-500:]}"
    assert out == "", f"{step} printed {out[:200]!r} for {shown}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{step} {shown}: {err[-800:]}"
    assert "internal error" not in lines[0] and "Traceback" not in err, f"{shown}: {lines[0]}"
    FIGURES["fuzzed requests refused in one line"] += 1


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
@pytest.mark.parametrize("step", ["check", "in", "out"])
def test_malformed_texts(step: str, text: str, tmp_path: Path) -> None:
    assert_refused(step, text, tmp_path)


def test_seeded_mutations(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store = str(tmp_path / "store")
    for _ in range(60 * SCALE):
        step = rng.choice(["check", "in", "out"])
        request = json.loads(json.dumps(valid_requests(store)[step]))
        for mutate in rng.sample(MUTATIONS, rng.randint(1, 3)):
            if "source" not in request or not isinstance(request["source"], dict):
                request["source"] = {}
            request["source"].setdefault("repository", store)
            mutate(request, rng)
        assert_refused(step, json.dumps(request), tmp_path / "dir")
