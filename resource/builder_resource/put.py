"""put (``out``): build, collect, publish one version. Orchestration only."""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import release as rel
from .attesting import attachments_for, concourse, signer_for
from .building import git
from .building.builders import Builder
from .building.cache import BuildCache
from .building.collect import collect
from .building.command import run_build_command
from .building.credentials import RegistryLogin
from .building.environment import BuildSettings, prepare_build
from .config import OutRequest, PutParams, Source, Tag, parse_request
from .errors import ConfigError, StoreError
from .oci.manifest import config_platform
from .oci.prepare import PreparedImage, prepare
from .publish import publish
from .stale import remove_stale
from .store import Store, open_store

log = logging.getLogger(__name__)

#: What the index says of the Concourse build (``attesting.concourse``), as
#: ``<prefix>.build.<key>`` annotations.
BUILD_KEYS = ("team", "pipeline", "job", "name", "url")


def run(payload: Any, sources: Path, env: dict[str, str]) -> dict[str, Any]:
    request = parse_request(OutRequest, payload)
    source, params = request.source, request.params
    signer = signer_for(source)
    for killed in ("builder-put-*", "builder-build-*"):
        remove_stale(Path(tempfile.gettempdir()), killed)
    context = _context(sources, params.context)
    now = datetime.now(UTC)
    revision = git.revision(context)
    tag = _tag(sources, params, now, revision)
    # The lean transport first: a put whose blobs are all there already need not
    # import requests.
    store = open_store(**source.store_settings(), env=env, lean=True)
    _refuse_existing(store, tag)

    settings = build_settings(source, _build_cache(source, env))
    with prepare_build(settings, {**source.env, **params.env}, env) as (builder, build_env):
        run_build_command(params.command or source.command, context, build_env)
        output = context / (params.output or source.output)
        _save_images(builder, source.images, output, build_env)

    with tempfile.TemporaryDirectory(prefix="builder-put-") as scratch:
        release = _release(output, Path(scratch), _annotations(tag, now, revision, context, env))
        encoded = rel.encode(release)
        # The attachments (the SBOMs read every layer) are made while the blobs upload.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attest") as pool:
            attached = pool.submit(
                attachments_for, store=store, source=source, params=params,
                repository=store.location, tag=tag, release=release, index=encoded.index,
                started=now, revision=revision, context=context, builder=builder.name, env=env,
                signer=signer,
            )  # fmt: skip
            digest = publish(store, encoded, tag, attached.result)

    log.info("published %s@%s as %s", store.location, digest, tag)
    return {
        "version": {"tag": tag, "digest": digest},
        "metadata": _metadata(tag, release, builder.name, revision),
    }


def _save_images(
    builder: Builder, references: list[str], output: Path, env: dict[str, str]
) -> None:
    """``source.images``: save each from the builder's store as ``<name>.tar``."""
    for reference in references:
        output.mkdir(parents=True, exist_ok=True)
        destination = output / f"{_last_component(reference)}.tar"
        log.info("saving %s to %s", reference, destination)
        builder.save_image(reference, destination, env)


def _release(output: Path, scratch: Path, annotations: dict[str, str]) -> rel.Release:
    """What the output directory holds, as a release ready to encode."""
    collected = collect(output, scratch)
    images = []
    for found in collected.images:
        prepared = prepare(found.image, scratch)
        platform = None  # a multi-platform image: its index names each platform
        if isinstance(prepared, PreparedImage):
            with prepared.config.open() as f:
                platform = config_platform(f.read(16 << 20))
        images.append(
            rel.ReleaseImage(found.name, found.path, prepared, found.image.repo_tags, platform)
        )
    return rel.Release(tuple(images), collected.files, annotations)


def _metadata(
    tag: str, release: rel.Release, builder: str, revision: str | None
) -> list[dict[str, str]]:
    metadata = [{"name": "tag", "value": tag}]
    for i in release.images:
        metadata.append({"name": f"image {i.name}", "value": i.image.manifest_digest})
        if i.image.platforms:
            metadata.append(
                {"name": f"image {i.name} platforms", "value": " ".join(i.image.platforms)}
            )
    metadata += [
        {"name": "files", "value": str(release.files.count)},
        {"name": "files bytes", "value": str(release.files.size)},
        {"name": "builder", "value": builder},
    ]
    if revision:
        metadata.append({"name": "revision", "value": revision})
    return metadata


def build_settings(source: Source, cache: BuildCache | None = None) -> BuildSettings:
    """The build's plain values; with a cache, the store's credentials for its
    registry too, so that the builder may read and write the cache there."""
    registries = [
        RegistryLogin(r.host, r.username, r.password.get_secret_value()) for r in source.registries
    ]
    if cache is not None and source.username and source.password:
        password = source.password.get_secret_value()
        registries.append(RegistryLogin(cache.host, source.username, password))
    return BuildSettings(
        source.builder, source.debug, tuple(source.ca_certs), tuple(registries), cache
    )


def _build_cache(source: Source, env: dict[str, str]) -> BuildCache | None:
    """``source.cache``, once its repository has answered that this put may push
    there; else one line saying why the build goes without it."""
    repository = source.cache_repository()
    if repository is None:
        return None
    if source.is_local:
        log.warning(
            "build cache: a local layout store keeps none (buildah and img cache only in "
            "registries): building without it"
        )
        return None
    # Two tries: a cache is worth a retry, not a long wait before a cold build.
    settings = {**source.store_settings(), "repository": repository}
    store = open_store(**settings, env=env, tries=2)
    try:
        store.check_push()
    except StoreError as e:
        log.warning("build cache: %s: %s; building without it", repository, e)
        return None
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return BuildCache(repository, insecure=source.insecure)


def _inside(sources: Path, relative: str, field: str) -> Path:
    """``relative`` resolved, symlinks included, and refused unless it stays
    inside ``sources`` ($1): a put reads and builds only what its inputs hold."""
    top = sources.resolve()
    path = (top / relative).resolve()
    if not path.is_relative_to(top):
        raise ConfigError(f"{field}: {relative} is outside the put's directory {sources}")
    return path


def _context(sources: Path, relative: str) -> Path:
    context = _inside(sources, relative, "params.context")
    if not context.is_dir():
        raise ConfigError(f"params.context: {relative} is not a directory in {sources}")
    return context


def _tag(sources: Path, params: PutParams, now: datetime, revision: str | None) -> str:
    if params.version:
        return params.version
    if params.version_file:
        path = _inside(sources, params.version_file, "params.version_file")
        try:
            text = path.read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"params.version_file: cannot read {params.version_file}: {e}"
            ) from None
        from pydantic import TypeAdapter, ValidationError

        try:
            return TypeAdapter(Tag).validate_python(text)
        except ValidationError:
            raise ConfigError(
                f"params.version_file: {params.version_file} holds {_what(text)}, not a valid tag"
            ) from None
    from .versions import default_tag

    return default_tag(now, revision)


def _what(text: str) -> str:
    """A version file's content, quoted only where it could have been a tag (one
    short line): an error never shows more of a file than that."""
    if "\n" not in text and len(text) <= 128 and text.isprintable():
        return repr(text)
    return f"{len(text.splitlines())} lines, {len(text)} characters"


def _refuse_existing(store: Store, tag: str) -> None:
    existing = store.resolve_tag(tag)
    if existing is not None:
        raise StoreError(
            f"version {tag} already exists in {store.location} ({existing}); versions are "
            "immutable: give a new version, or leave version unset for a time-ordered tag"
        )


def _last_component(reference: str) -> str:
    """``localhost/team/app:1.0`` -> ``app``; ``app@sha256:...`` -> ``app``."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _annotations(
    tag: str, now: datetime, revision: str | None, context: Path, env: dict[str, str]
) -> dict[str, str]:
    out = {
        "org.opencontainers.image.created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.version": tag,
    }
    if revision:
        out["org.opencontainers.image.revision"] = revision
    url = git.source_url(context)
    if url:
        out["org.opencontainers.image.source"] = url
    build = concourse(env)
    out.update((f"{rel.PREFIX}.build.{key}", build[key]) for key in BUILD_KEYS if key in build)
    return out
