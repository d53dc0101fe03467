"""`make demo`: put, check and get examples/hello through opt/resource/*, the way
Concourse runs them, against a local OCI layout store; then show what get wrote."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "opt" / "resource"


def step(name: str, request: dict, directory: Path | None = None) -> dict | list:
    args = [str(SCRIPTS / name)] + ([str(directory)] if directory else [])
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "BUILD_ID": "1",
        "BUILD_NAME": "1",
        "BUILD_JOB_NAME": "demo",
        "BUILD_PIPELINE_NAME": "hello",
        "BUILD_TEAM_NAME": "main",
    }
    if directory:
        directory.mkdir(parents=True, exist_ok=True)
    print(f"\n$ {SCRIPTS.relative_to(ROOT) / name} {directory or ''}  <<< {json.dumps(request)}")
    done = subprocess.run(
        args,
        input=json.dumps(request).encode(),
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{name} failed with exit status {done.returncode}")
    result = json.loads(done.stdout)
    print(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / ".demo")
    work = parser.parse_args().work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    put_dir, get_dir = work / "put", work / "get"
    shutil.copytree(
        ROOT / "examples" / "hello",
        put_dir / "src",
        ignore=shutil.ignore_patterns("release", "busybox"),
    )
    source = {"repository": str(work / "store")}

    put = step("out", {"source": source, "params": {"context": "src"}}, put_dir)
    versions = step("check", {"source": source})
    assert versions == [put["version"]], versions
    step(
        "in",
        {"source": source, "params": {"rootfs": True}, "version": put["version"]},
        get_dir,
    )

    print(f"\nget wrote {get_dir}:")
    for path in sorted(get_dir.rglob("*")):
        rel = path.relative_to(get_dir)
        if rel.parts[2:3] == ("rootfs",) and len(rel.parts) > 4:
            continue  # two levels of each rootfs are enough to show
        kind = "->" + str(path.readlink()) if path.is_symlink() else "/" if path.is_dir() else ""
        size = "" if path.is_dir() or path.is_symlink() else f"  {path.stat().st_size} bytes"
        print(f"  {rel}{kind}{size}")
    message = get_dir / "images" / "hello" / "rootfs" / "etc" / "hello" / "message"
    print(f"\nimages/hello/rootfs/etc/hello/message: {message.read_text().strip()}")


if __name__ == "__main__":
    main()
