"""The extra CA certificates a pipeline asks us to trust.

They come from ``source.ca_certs`` and the ``LOCAL_CA_CERTIFICATE`` variable
(Concourse's convention for a CA every resource and task should trust). The
store (for its own HTTPS) and the build (for everything it runs) both use them.

The store's HTTP clients verify against one bundle file, so the extra PEMs are
appended to the public bundle (certifi's and the system's) in a temporary file
that lives as long as the process: a private CA adds trust, it never takes the
public CAs away.

The build gets them through two mechanisms (:func:`trust_extra_cas`), because no
single one reaches every tool:

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

import atexit
import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BuildError, ConfigError

if TYPE_CHECKING:
    import subprocess

log = logging.getLogger(__name__)

LOCAL_CA_VARIABLE = "LOCAL_CA_CERTIFICATE"

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


def trusted_certificates(ca_certs: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Every certificate of ``source.ca_certs`` and ``LOCAL_CA_CERTIFICATE`` as
    one normalised PEM block each, duplicates dropped, in order."""
    found: list[str] = []
    named = [(f"source.ca_certs[{i}]", text) for i, text in enumerate(ca_certs)]
    if env.get(LOCAL_CA_VARIABLE, "").strip():
        named.append((LOCAL_CA_VARIABLE, env[LOCAL_CA_VARIABLE]))
    for where, text in named:
        for pem in split_pem(text, where):
            if pem not in found:
                found.append(pem)
    return found


def split_pem(text: str, where: str) -> list[str]:
    """The certificates in ``text``; a :class:`ConfigError` naming ``where``
    if there is none or one is not base64."""
    blocks = _PEM.findall(text)
    if not blocks:
        raise ConfigError(f"{where}: not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    out = []
    for block in blocks:
        body = "".join(block.split())
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: a certificate is not valid base64") from None
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        out.append(
            "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
        )
    return out


SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
_bundles: dict[str, str] = {}


def check_certificates(ca_certs: Sequence[str]) -> None:
    """Refuse what OpenSSL would refuse, with a message that says which entry."""
    for i, pem in enumerate(ca_certs):
        try:
            ssl.create_default_context(cadata=pem)
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"CA certificate {i + 1} is not a valid PEM certificate: {e}"
            ) from None


def public_bundle() -> str:
    """The PEM text of the public CAs requests would use, plus the system's."""
    texts = []
    try:
        import certifi

        texts.append(Path(certifi.where()).read_text())
    except (ImportError, OSError):
        pass
    system = system_bundle()
    if system is not None:
        with contextlib.suppress(OSError):
            texts.append(Path(system).read_text())
    return "\n".join(texts)


def system_bundle() -> str | None:
    """The system's CA bundle: the first of :data:`SYSTEM_BUNDLES` that can be read."""
    return next((path for path in SYSTEM_BUNDLES if os.access(path, os.R_OK)), None)


def ca_bundle_file(ca_certs: Sequence[str]) -> str:
    """Path of a bundle that trusts the public CAs and ``ca_certs``. One file per
    distinct set, reused by every store of the process and removed at exit."""
    check_certificates(ca_certs)
    key = hashlib.sha256("\n".join(ca_certs).encode()).hexdigest()
    path = _bundles.get(key)
    if path and os.path.exists(path):
        return path
    import tempfile  # here: check, which reads certificates too, rarely needs a bundle

    fd, path = tempfile.mkstemp(prefix="builder-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write(public_bundle())
        f.write("\n")
        for pem in ca_certs:
            f.write(pem.strip() + "\n")
    _bundles[key] = path
    atexit.register(_remove, path)
    return path


#: Debian's bundle, and the directory of the same certificates by subject hash.
SYSTEM_HASHED_DIRS = {"/etc/ssl/certs/ca-certificates.crt": "/etc/ssl/certs"}


@dataclass(frozen=True)
class Trust:
    """What a registry's certificate is verified against: nothing (``insecure``),
    the public CAs, or the public CAs and a pipeline's own (``ca_certs``)."""

    ca_certs: tuple[str, ...] = ()
    insecure: bool = False

    def __post_init__(self) -> None:
        check_certificates(self.ca_certs)

    @property
    def public_only(self) -> bool:
        """requests' default, the one case where it takes a bundle from the environment."""
        return not self.insecure and not self.ca_certs

    def requests_verify(self) -> str | bool:
        """requests' ``verify``: False, True (certifi's CAs), or a bundle file of the
        public CAs and ``ca_certs``, written on first use."""
        if self.insecure:
            return False
        return ca_bundle_file(self.ca_certs) if self.ca_certs else True

    def ssl_context(self) -> ssl.SSLContext:
        """A context for ``http.client`` that trusts no more than requests given
        :meth:`requests_verify` would: what it refuses goes to requests, which then
        decides. With ``ca_certs``: those and the system's CAs, looked up by hash
        when a chain needs one, rather than the bundle's some 300 certificates
        parsed on every check."""
        if self.insecure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_certs:
            context = ssl.create_default_context(cadata="".join(self.ca_certs))
            hashed = SYSTEM_HASHED_DIRS.get(system_bundle() or "")
            if hashed is not None:  # the same CAs as the bundle's system part
                context.load_verify_locations(capath=hashed)
        else:
            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # as urllib3's
        context.hostname_checks_common_name = False
        return context


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


# -- the build's trust ---------------------------------------------------------------

INSTALL_VARIABLE = "BUILDER_RESOURCE_INSTALL_CAS"
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")
NODE_VARIABLE = "NODE_EXTRA_CA_CERTS"

Runner = Callable[..., "subprocess.CompletedProcess"]


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
    pems: Sequence[str], store: SystemStore = SystemStore(), run: Runner | None = None
) -> list[Path]:
    """Write each CA as ``<local_dir>/concourse-builder-img-<hash>.crt`` (named by
    content, so a second put adds nothing) and rebuild the system bundle."""
    import subprocess  # here: only a put running as root installs CAs

    run = run or subprocess.run
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
    run: Runner | None = None,
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
