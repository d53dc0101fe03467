"""The builder's layer cache, kept in a registry so that it outlives the worker.

Every put runs in a fresh container, so a builder's local cache is always empty.
Both builders can keep their cache in a registry instead: buildah with
``--layers --cache-from REPO --cache-to REPO`` (buildah 1.27+), img with
``--cache-from REPO --cache-to type=registry,ref=REPO,mode=max`` (BuildKit's
export syntax). The project's Makefile need not know: put places a wrapper named
like the builder first on ``PATH``, which adds the flags to ``build`` (and
``bud``) and passes everything else through untouched, so ``$(DOCKER) build -t x .``
and a plain ``buildah build`` both get the cache.

A cache never breaks a build. Put checks the cache repository before the build
(reachable, and the credentials may push) and builds without the cache when it
cannot; if a build with the cache then fails on the cache itself (the registry
gone mid-build, a push refused), the wrapper says so in one line and builds
again without it. A corrupt entry is buildah's to skip: that step rebuilds.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildCache:
    """A registry repository (``host[:port]/path``) for the builder's cache."""

    repository: str
    insecure: bool = False  # plain HTTP, or TLS without verification

    @property
    def host(self) -> str:
        return self.repository.split("/", 1)[0]


#: What the wrapper runs. Written with the real builder's path and the flags; its
#: own messages go to stderr like the build's.
WRAPPER = """#!/bin/sh
# Written by concourse-builder-img's put for this build: `{name} build` with the
# layer cache kept in {repository}; every other command passes through untouched.
real={real}
case "${{1:-}}" in
  build|bud) ;;
  *) exec "$real" "$@" ;;
esac
sub=$1
shift
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
{{ "$real" "$sub" {flags} "$@"; echo $? >"$scratch/status"; }} 2>&1 | tee "$scratch/log"
status=$(cat "$scratch/status")
if [ "$status" -ne 0 ] && grep -qiE '^(error|.*level=fatal).*cache' "$scratch/log"; then
  echo "build cache: {repository} failed this build; building again without it" >&2
  "$real" "$sub" "$@"
  exit $?
fi
exit "$status"
"""


def install_cache(
    builder_name: str,
    executable: str,
    flags: list[str] | None,
    cache: BuildCache,
    bin_dir: Path,
    env: Mapping[str, str],
) -> dict[str, str]:
    """``env`` with the wrapper first on ``PATH``; unchanged (and one warning line)
    where the builder cannot use this cache (``flags`` is None) or is not found."""
    if flags is None:
        log.warning(
            "build cache: %s cannot use %s (plain HTTP): building without it",
            builder_name,
            cache.repository,
        )
        return dict(env)
    real = shutil.which(executable, path=env.get("PATH"))
    if real is None:
        return dict(env)
    bin_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    wrapper = bin_dir / executable
    wrapper.write_text(
        WRAPPER.format(
            name=builder_name,
            repository=cache.repository,
            real=shlex.quote(real),
            flags=" ".join(shlex.quote(flag) for flag in flags),
        )
    )
    wrapper.chmod(0o755)
    log.info("build cache: %s (%s build %s)", cache.repository, builder_name, " ".join(flags))
    return {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}


def insecure_registries_conf(directory: Path, cache: BuildCache) -> dict[str, str]:
    """For buildah (containers/image): a registries.conf that lets the cache's
    registry alone be plain HTTP or unverified TLS, where ``--tls-verify=false``
    would drop verification for every registry the build pulls from. The system's
    drop-ins (``registries.conf.d``, its short-name aliases) are still read."""
    if not cache.insecure:
        return {}
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = directory / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{cache.host}"\ninsecure = true\n')
    return {"CONTAINERS_REGISTRIES_CONF": str(conf)}
