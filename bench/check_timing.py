"""How long ``opt/resource/check`` takes with the cursor at the newest of N tags,
against ``skopeo list-tags`` on the same registry (issue 11: check ≤ 100 ms wall from
process start; skopeo's list-tags is the yardstick).

    python3 bench/check_timing.py [--runs 20] [--tags 200] [--setups plain,layout,...]

For each set-up: a fresh docker-registry on 127.0.0.1 (plain HTTP; TLS with a test
CA given as ``ca_certs``; TLS + htpasswd Basic; plain HTTP + Bearer tokens) or a
layout directory, filled with N tags. Then, alternating run by run: check through
the wrapper with a warm cache, and skopeo. Printed: the cold check (first run in a
fresh ``TMPDIR``: pydantic validates the source and the registry is probed), the
warm medians, skopeo's, and the full path's (``BUILDER_RESOURCE_FAST_CHECK=0``).
Every check's output is compared with the full path's. For scale, the first line
is the interpreter alone (``python -P -c pass``), the floor of any Python check.

The resource runs with ``--python`` (default: this interpreter). Use a venv like the
image's, on Debian's python3 (``/usr/bin/python3 -m venv /tmp/ckvenv &&
/tmp/ckvenv/bin/pip install .``): a system site-packages with extra ``.pth`` files
costs every start.
TLS and auth set-ups need the test fixtures (``cryptography``, ``pytest``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: harness.* from this checkout
    sys.path.insert(0, str(ROOT))
from harness.registry import free_port, launch, stop_process, wait_until_answering  # noqa: E402

CHECK = ROOT / "opt" / "resource" / "check"
SETUPS = ("plain", "tls", "basic", "bearer", "layout")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Target:
    """One store filled with tags: the check source and the matching skopeo call."""

    name: str
    source: dict
    newest: dict
    skopeo: list[str] | None = None
    skopeo_env: dict[str, str] = field(default_factory=dict)


@contextmanager
def docker_registry(
    workdir: Path, *, tls: tuple[Path, Path] | None = None, auth: dict | None = None
) -> Iterator[str]:
    """A quiet docker-registry (no access log), as the benchmark starts them;
    yields ``127.0.0.1:port``."""
    host = f"127.0.0.1:{free_port()}"
    http = {"tls": {"certificate": str(tls[0]), "key": str(tls[1])}} if tls else None
    process, log = launch(workdir, host, http=http, auth=auth)
    try:
        wait_until_answering(f"{'https' if tls else 'http'}://{host}", process, log)
        yield host
    finally:
        stop_process(process)


def fill(store, count: int) -> dict:
    """``count`` default-style tags (time order), each its own tiny index; returns
    the newest as a version."""
    newest = {}
    for i in range(count):
        tag = f"20260101T{i // 60:02d}{i % 60:02d}00Z-abcdef1"
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": {"t": tag}}
        ).encode()
        newest = {"tag": tag, "digest": store.push_manifest(body, OCI_INDEX, tag)}
    return newest


def env_for(python: str, tmpdir: Path, **extra: str) -> dict[str, str]:
    """A clean environment like the ATC's for check, plus the interpreter choice."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmpdir),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmpdir),
        "BUILDER_RESOURCE_PYTHON": python,
    }
    env.update(extra)
    return env


def timed(argv: list[str], stdin: bytes | None, env: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode()[-2000:]}")
    return elapsed, done.stdout


def measure(target: Target, python: str, runs: int, full_runs: int) -> dict[str, float]:
    request = json.dumps({"source": target.source, "version": target.newest}).encode()
    with tempfile.TemporaryDirectory(prefix="check-timing-") as tmp:
        tmpdir = Path(tmp)
        env = env_for(python, tmpdir)
        cold, out = timed([str(CHECK)], request, env)
        expected = [target.newest]
        assert json.loads(out) == expected, out
        checks, peers = [], []
        for _ in range(runs):
            elapsed, out = timed([str(CHECK)], request, env)
            assert json.loads(out) == expected, out
            checks.append(elapsed)
            if target.skopeo:
                peer_env = {**env, **target.skopeo_env}
                elapsed, out = timed(target.skopeo, None, peer_env)
                assert len(json.loads(out)["Tags"]) > 0
                peers.append(elapsed)
        full_env = {**env, "BUILDER_RESOURCE_FAST_CHECK": "0"}
        fulls = []
        for _ in range(full_runs):
            elapsed, out = timed([str(CHECK)], request, full_env)
            assert json.loads(out) == expected, out
            fulls.append(elapsed)
    result = {
        "cold": cold * 1000,
        "warm": statistics.median(checks) * 1000,
        "warm_min": min(checks) * 1000,
    }
    if peers:
        result["skopeo"] = statistics.median(peers) * 1000
        result["skopeo_min"] = min(peers) * 1000
    if fulls:
        result["full"] = statistics.median(fulls) * 1000
    return result


def targets(stack: ExitStack, work: Path, setups: list[str], count: int) -> Iterator[Target]:
    sys.path[:0] = [str(ROOT / "resource"), str(ROOT / "tests")]
    from builder_resource.store.layout import LayoutStore
    from builder_resource.store.registry import RegistryStore

    repo = "bench/check"
    for name in setups:
        if name == "layout":
            directory = work / "layout"
            newest = fill(LayoutStore(directory), count)
            yield Target(name, {"repository": str(directory)}, newest)
            continue
        if name == "plain":
            host = stack.enter_context(docker_registry(work / name))
            store = RegistryStore(f"{host}/{repo}", insecure=True)
            source = {"repository": f"{host}/{repo}", "insecure": True}
            skopeo = ["skopeo", "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"]
            yield Target(name, source, fill(store, count), skopeo)
            continue
        from fixtures.pki import make_ca, make_server_cert  # needs cryptography

        if name in ("tls", "basic"):
            ca = make_ca()
            cert, key = make_server_cert(ca).write(work, f"{name}-server")
            certs = work / f"{name}-certs"
            certs.mkdir()
            (certs / "ca.crt").write_text(ca.cert_pem)
            auth, creds = None, {}
            if name == "basic":
                from fixtures.registry import PASSWORD, USER, htpasswd_line

                (work / "htpasswd").write_text(htpasswd_line(USER, PASSWORD) + "\n")
                auth = {"htpasswd": {"realm": "bench", "path": str(work / "htpasswd")}}
                creds = {"username": USER, "password": PASSWORD}
            host = stack.enter_context(docker_registry(work / name, tls=(cert, key), auth=auth))
            source = {"repository": f"{host}/{repo}", "ca_certs": [ca.cert_pem], **creds}
            store = RegistryStore(f"{host}/{repo}", ca_certs=[ca.cert_pem], **creds)
            skopeo = ["skopeo", "list-tags", f"--cert-dir={certs}", f"docker://{host}/{repo}"]
            if creds:
                skopeo.insert(2, f"--creds={creds['username']}:{creds['password']}")
            yield Target(name, source, fill(store, count), skopeo)
            continue
        if name == "bearer":
            from fixtures.http_fakes import ISSUER, SERVICE, TokenServer
            from fixtures.registry import PASSWORD, USER

            signer = make_ca("check-timing token signer")
            (work / "signer.crt").write_text(signer.cert_pem)
            tokens = TokenServer(signer, {USER: (PASSWORD, {"pull", "push"})})
            stack.callback(tokens.stop)
            auth = {
                "token": {
                    "realm": tokens.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(work / "signer.crt"),
                }
            }
            host = stack.enter_context(docker_registry(work / name, auth=auth))
            creds = {"username": USER, "password": PASSWORD}
            source = {"repository": f"{host}/{repo}", "insecure": True, **creds}
            store = RegistryStore(f"{host}/{repo}", insecure=True, **creds)
            skopeo = [
                "skopeo",
                "list-tags",
                "--tls-verify=false",
                f"--creds={USER}:{PASSWORD}",
                f"docker://{host}/{repo}",
            ]
            yield Target(name, source, fill(store, count), skopeo)
            continue
        raise SystemExit(f"unknown set-up {name!r} (choose from {', '.join(SETUPS)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--full-runs", type=int, default=5)
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--python", default=os.environ.get("BUILDER_RESOURCE_PYTHON"))
    args = parser.parse_args(argv)
    python = args.python or sys.executable
    setups = [s for s in args.setups.split(",") if s]
    if any(s != "layout" for s in setups) and not shutil.which("docker-registry"):
        raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")
    have_skopeo = shutil.which("skopeo") is not None
    print(f"check with the cursor at the newest of {args.tags} tags; {args.runs} runs; {python}")
    names = ("cold", "warm", "(min)", "skopeo", "(min)", "full")
    print(f"{'set-up':8} " + " ".join(f"{n:>8}" for n in names) + "   ms, medians")
    bare = []
    for _ in range(args.runs):
        bare.append(timed([python, "-P", "-c", "pass"], None, env_for(python, Path("/tmp")))[0])
    cells = [float("nan"), statistics.median(bare) * 1000, min(bare) * 1000]
    print(f"{'python':8} " + " ".join(f"{c:8.1f}" for c in cells) + "   (-P -c pass)")
    with tempfile.TemporaryDirectory(prefix="check-timing-stores-") as tmp, ExitStack() as stack:
        for target in targets(stack, Path(tmp), setups, args.tags):
            if not have_skopeo:
                target.skopeo = None
            r = measure(target, python, args.runs, args.full_runs)
            cells = [r["cold"], r["warm"], r["warm_min"]]
            cells += [r.get("skopeo", float("nan")), r.get("skopeo_min", float("nan"))]
            cells += [r.get("full", float("nan"))]
            print(f"{target.name:8} " + " ".join(f"{c:8.1f}" for c in cells))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {load} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
