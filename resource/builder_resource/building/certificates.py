"""Extra CA certificates, trusted by everything the build runs.

They come from ``source.ca_certs`` and the ``LOCAL_CA_CERTIFICATE`` variable.
Two mechanisms, because no single one reaches every tool:

- the system store (Debian's ``/usr/local/share/ca-certificates`` plus
  ``update-ca-certificates``), as concourse-builder-img did: img's Go TLS, curl,
  apt and everything that reads ``/etc/ssl/certs`` trust them. The resource only
  does this where it owns the system: running as root with
  ``BUILDER_RESOURCE_INSTALL_CAS=1``, which the resource image sets. A developer's
  machine or a test run is never touched;
- always, a bundle file (the system bundle plus the extra CAs) that the usual
  variables point at: ``SSL_CERT_FILE`` (Go, OpenSSL, so img and buildah),
  ``REQUESTS_CA_BUNDLE`` (Python requests), ``CURL_CA_BUNDLE``, ``GIT_SSL_CAINFO``;
  and ``NODE_EXTRA_CA_CERTS``, which node adds to its own list, at the extra CAs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..certificates import trusted_certificates
from ..errors import BuildError

log = logging.getLogger(__name__)

INSTALL_VARIABLE = "BUILDER_RESOURCE_INSTALL_CAS"
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")
NODE_VARIABLE = "NODE_EXTRA_CA_CERTS"

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class SystemStore:
    """Debian's CA store: where local CAs go, the bundle it builds from them,
    and the command that rebuilds it. Tests point it at a temporary tree."""

    local_dir: Path = Path("/usr/local/share/ca-certificates")
    bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    update: tuple[str, ...] = ("update-ca-certificates",)


def wants_system_install(env: Mapping[str, str], euid: int | None = None) -> bool:
    """Only the resource image opts in, and only root may write the store."""
    euid = os.geteuid() if euid is None else euid
    return euid == 0 and env.get(INSTALL_VARIABLE, "") == "1"


def install_into_system_store(
    pems: Sequence[str], store: SystemStore = SystemStore(), run: Runner = subprocess.run
) -> list[Path]:
    """Write each CA as ``<local_dir>/concourse-builder-img-<hash>.crt`` (named by
    content, so a second put adds nothing) and rebuild the system bundle."""
    store.local_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for pem in pems:
        name = f"concourse-builder-img-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.crt"
        path = store.local_dir / name
        path.write_text(pem)
        path.chmod(0o644)
        written.append(path)
    try:
        done = run(list(store.update), capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"adding CA certificates to the system store: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:]
        raise BuildError(
            f"adding CA certificates to the system store: `{' '.join(store.update)}` failed "
            f"with exit status {done.returncode}{': ' + tail[0] if tail else ''}"
        )
    log.info("added %d CA certificate(s) to the system store", len(written))
    return written


def write_bundles(workdir: Path, pems: Sequence[str], system_bundle: Path) -> tuple[Path, Path]:
    """``ca-bundle.crt`` (the system bundle, then the extra CAs it lacks) and
    ``extra-ca.crt`` (the extra CAs alone), in ``workdir``."""
    try:
        system = system_bundle.read_text()
    except OSError:
        log.warning("no system CA bundle at %s: trusting only the extra CAs", system_bundle)
        system = ""
    if system and not system.endswith("\n"):
        system += "\n"
    bundle = workdir / "ca-bundle.crt"
    bundle.write_text(system + "".join(p for p in pems if p not in system))
    extra = workdir / "extra-ca.crt"
    extra.write_text("".join(pems))
    for path in (bundle, extra):
        path.chmod(0o644)
    return bundle, extra


def ca_environment(bundle: Path, extra: Path) -> dict[str, str]:
    env = {name: str(bundle) for name in BUNDLE_VARIABLES}
    env[NODE_VARIABLE] = str(extra)
    return env


def trust_extra_cas(
    workdir: Path,
    ca_certs: Sequence[str],
    env: Mapping[str, str],
    *,
    system_store: SystemStore | None = None,
    install: bool | None = None,
    run: Runner = subprocess.run,
) -> dict[str, str]:
    """Do both, and return the variables for the build; nothing at all when
    there are no extra CAs. ``install`` defaults to :func:`wants_system_install`."""
    pems = trusted_certificates(ca_certs, env)
    if not pems:
        return {}
    store = system_store or SystemStore()
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if wants_system_install(env) if install is None else install:
        install_into_system_store(pems, store, run)
    bundle, extra = write_bundles(workdir, pems, store.bundle)
    log.info("trusting %d extra CA certificate(s)", len(pems))
    return ca_environment(bundle, extra)
