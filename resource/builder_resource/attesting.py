"""The steps' side of issue 14: put's facts as the plain values ``attest/`` takes,
the keys from the source, and what get writes under ``attestations/``.

What comes from Concourse (the build's team, pipeline, job, name and URL) and from
the request is read here, so that ``attest/`` knows neither. Secrets stay here:
environment variables go into the provenance by name only; credentials and keys
not at all.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from .attest.provenance import PutFacts
from .attest.referrers import Attachments, Found, VerificationError, verify_version
from .attest.signing import Signer, Verifier, load_signer, load_verifier
from .attest.version import attach, reusable_sboms
from .building import git
from .config import PutParams, Source
from .errors import StoreError
from .release import Release
from .store import Store
from .versions import order_tags

log = logging.getLogger(__name__)

CONCOURSE_VARIABLES = {
    "team": "BUILD_TEAM_NAME",
    "pipeline": "BUILD_PIPELINE_NAME",
    "job": "BUILD_JOB_NAME",
    "name": "BUILD_NAME",
    "url": "BUILD_URL",
    "external_url": "ATC_EXTERNAL_URL",
}


def signer_for(source: Source) -> Signer | None:
    """``source.signing_key``, loaded before the build so a bad key fails first."""
    if source.signing_key is None:
        return None
    password = source.signing_key_password
    return load_signer(
        source.signing_key.get_secret_value(),
        password.get_secret_value() if password is not None else None,
    )


def attachments_for(
    *,
    store: Store,
    source: Source,
    params: PutParams,
    repository: str,
    tag: str,
    release: Release,
    index: bytes,
    started: datetime,
    revision: str | None,
    context: Path,
    builder: str,
    env: dict[str, str],
    signer: Signer | None,
) -> Attachments:
    facts = PutFacts(
        repository=repository,
        tag=tag,
        command=params.command or source.command,
        output=params.output or source.output,
        params=public_params(source, params),
        builder=builder,
        git_remote=git.source_url(context),
        git_revision=revision,
        concourse=concourse(env),
        started=started,
        finished=datetime.now(UTC),
    )
    earlier = newest_sboms(store, source, signer) if source.sbom else {}
    return attach(release, index, facts, with_sbom=source.sbom, signer=signer, earlier=earlier)


def newest_sboms(
    store: Store, source: Source, signer: Signer | None
) -> dict[tuple[str, str], bytes]:
    """The SBOMs of the newest version (check's order), which a put that builds
    the same images again takes instead of reading their layers."""
    try:
        tags = order_tags(store.list_tags(), source.tag_regex)
        newest = store.resolve_tag(tags[-1]) if tags else None
    except StoreError as e:
        log.info("sbom: no earlier version to reuse from: %s", e)
        return {}
    return reusable_sboms(store, newest, signer) if newest else {}


def public_params(source: Source, params: PutParams) -> dict[str, object]:
    """The put's params as given, with environment values left out (their names
    stay: ``env`` is where pipelines pass credentials to a build)."""
    shown = params.model_dump(mode="json", exclude_none=True, exclude={"env"})
    names = sorted({*source.env, *params.env})
    if names:
        shown["env"] = names
    return shown


def concourse(env: dict[str, str]) -> dict[str, str]:
    found = {key: env[name] for key, name in CONCOURSE_VARIABLES.items() if env.get(name)}
    if "url" not in found and env.get("ATC_EXTERNAL_URL") and env.get("BUILD_ID"):
        found["url"] = f"{env['ATC_EXTERNAL_URL'].rstrip('/')}/builds/{env['BUILD_ID']}"
    return found


def verifier_for(source: Source) -> Verifier | None:
    return load_verifier(source.verify_keys) if source.verify_keys else None


def signed_versions(
    store: Store, versions: list[dict[str, str]], verifier: Verifier
) -> list[dict[str, str]]:
    """check with ``verify_keys``: the versions whose signature verifies; each
    other one skipped with one line on stderr."""
    kept = []
    for version in versions:
        try:
            verify_version(store, version["digest"], verifier)
        except VerificationError as e:
            log.warning("skipping version %s: %s", version["tag"], e)
            continue
        kept.append(version)
    return kept


def write_attestations(folder: Path, found: list[Found]) -> None:
    """``attestations/provenance.json`` and ``attestations/sbom/<image>.cdx.json``
    (the statements' predicates as they were signed), each signed one's DSSE
    envelope beside it as ``*.dsse.json``, for verifying by hand."""
    from .attest import provenance, sbom
    from .attest.referrers import IMAGE_NAME

    folder.mkdir()
    for item in found:
        statement = json.loads(item.statement)
        kind = statement.get("predicateType")
        if kind == provenance.PREDICATE_TYPE:
            path = folder / "provenance.json"
            body = item.statement
        elif kind == sbom.PREDICATE_TYPE:
            name = item.descriptor.annotations.get(IMAGE_NAME, item.descriptor.digest)
            path = folder / "sbom" / f"{name.replace('/', '_')}.cdx.json"
            body = json.dumps(statement.get("predicate"), indent=1).encode()
        else:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        if item.envelope is not None:
            path.with_name(path.name.removesuffix(".json") + ".dsse.json").write_bytes(
                item.envelope
            )
