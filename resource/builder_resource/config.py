"""The pipeline's configuration, as pydantic models, and the three requests.

Parsing is pure: it turns the JSON that Concourse sends into models, or raises a
:class:`ConfigError` whose message names the offending key by its path
(``source.repository: field required``). Values are never echoed back, since
``source`` holds credentials.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .oci.references import DIGEST_PATTERN as DIGEST
from .oci.references import TAG_PATTERN as TAG

M = TypeVar("M", bound=BaseModel)

Tag = Annotated[str, StringConstraints(pattern=TAG)]
Platform = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]+/[a-z0-9_.-]+(/[a-z0-9_.-]+)?$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryCredential(Model):
    """Credentials for a registry the build pulls from (``FROM``)."""

    host: str
    username: str
    password: SecretStr


def _variable_name(name: str) -> str:
    if not name or "=" in name:
        raise ValueError("a variable's name may not be empty or hold `=`")
    return name


#: An environment variable's name, as execve can carry it.
EnvName = Annotated[str, AfterValidator(_variable_name)]


class CacheSettings(Model):
    """``source.cache`` as an object: where the build cache lives."""

    repository: str | None = None  # default: the store's repository + "-cache"

    @field_validator("repository")
    @classmethod
    def _a_registry(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(("/", "file://")):
            raise ValueError("the build cache lives in a registry, not a directory")
        return value


class Source(Model):
    repository: Annotated[str, StringConstraints(min_length=1)]
    username: str | None = None
    password: SecretStr | None = None
    insecure: bool = False
    ca_certs: list[str] = Field(default_factory=list)
    registries: list[RegistryCredential] = Field(default_factory=list)
    command: str = "make release"
    output: str = "release"
    images: list[str] = Field(default_factory=list)
    builder: Literal["img", "buildah"] | None = None
    env: dict[EnvName, str] = Field(default_factory=dict)
    tag_regex: str | None = None
    debug: bool = False
    cache: CacheSettings | None = None  # `true` means the defaults
    #: Issue 14: what put attaches and get and check verify (attest/).
    sbom: bool = True
    signing_key: SecretStr | None = None
    signing_key_password: SecretStr | None = None
    verify_keys: list[str] = Field(default_factory=list)

    @field_validator("tag_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return value

    @field_validator("output")
    @classmethod
    def _relative(cls, value: str) -> str:
        return relative_path(value)

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_switch(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value

    @field_validator("repository")
    @classmethod
    def _fits_a_path(cls, value: str) -> str:
        """A directory's name must fit the kernel's limits (PATH_MAX, NAME_MAX), a
        registry's the distribution spec's (255 for host and path in all)."""
        local = value.startswith(("/", "file://"))
        if len(value) > (4095 if local else 255 + len("https://")):
            raise ValueError("too long for a repository")
        if local and any(len(part.encode()) > 255 for part in value.split("/")):
            raise ValueError("a path component is longer than 255 bytes")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Source:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.signing_key_password is not None and self.signing_key is None:
            raise ValueError("signing_key_password needs a signing_key")
        return self

    @property
    def is_local(self) -> bool:
        return self.repository.startswith(("/", "file://"))

    def cache_repository(self) -> str | None:
        """Where the build cache lives: ``cache.repository``, else a repository
        beside the store's named ``<repository>-cache`` (never tags of the store's
        own repository, whose tags are its versions; and no deeper than it, as
        Docker Hub allows two levels only). None when the cache is off."""
        if self.cache is None:
            return None
        if self.cache.repository:
            return self.cache.repository
        return f"{self.repository.removesuffix('/')}-cache"

    def store_settings(self) -> dict[str, Any]:
        """The plain values :func:`~.store.open_store` takes."""
        return {
            "repository": self.repository,
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "insecure": self.insecure,
            "ca_certs": list(self.ca_certs),
        }


class Version(Model):
    tag: Tag
    digest: Annotated[str, StringConstraints(pattern=DIGEST)]

    def to_json(self) -> dict[str, str]:
        return {"tag": self.tag, "digest": self.digest}


class PutParams(Model):
    context: str
    command: str | None = None
    output: str | None = None
    env: dict[EnvName, str] = Field(default_factory=dict)
    version: Tag | None = None
    version_file: str | None = None

    @field_validator("output")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value)

    @model_validator(mode="after")
    def _one_version(self) -> PutParams:
        if self.version is not None and self.version_file is not None:
            raise ValueError("give version or version_file, not both")
        return self


class GetParams(Model):
    rootfs: bool | list[str] = False
    format: Literal["docker", "oci", "oci-layout"] = "docker"
    images: list[str] | None = None
    skip_download: bool = False
    attestations: bool = False
    #: a multi-platform image's platform for rootfs and format docker (default: get's own)
    platform: Platform | None = None


class CheckRequest(Model):
    source: Source
    version: Version | None = None


class InRequest(Model):
    source: Source
    version: Version
    params: GetParams = Field(default_factory=GetParams)


class OutRequest(Model):
    source: Source
    params: PutParams


def relative_path(value: str) -> str:
    """Paths the user gives must stay inside the directory they are relative to."""
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if value.startswith("/") or ".." in parts or not parts:
        raise ValueError("must be a relative path inside the context, without '..'")
    return "/".join(parts)


def parse_request(model: type[M], payload: Any) -> M:
    """Validate a request; ``source: null`` and absent params count as ``{}``."""
    if not isinstance(payload, dict):
        raise ConfigError("request: expected a JSON object on stdin")
    _refuse_nul(payload, "")
    data = dict(payload)
    if data.get("source") is None:
        data["source"] = {}
    if "params" in model.model_fields and data.get("params") is None:
        data["params"] = {}  # Concourse omits empty params
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe(e)) from None


def _refuse_nul(value: Any, path: str) -> None:
    """No string of a request may hold a NUL byte: no path, argument or environment
    variable can carry one, and each would fail later with an error naming nothing."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError(f"{path or 'request'}: contains a NUL byte")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                raise ConfigError(f"{path or 'request'}: a key contains a NUL byte")
            _refuse_nul(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{path}.{index}")


def describe(error: ValidationError) -> str:
    """One line per problem, each naming the key by its path, never its value."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in item["loc"] if not _is_union_tag(p))
        lines.append(f"{path or 'request'}: {_message(item)}")
    return "; ".join(dict.fromkeys(lines))


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        "[" in part or part in {"str", "bool", "list", "constrained-str"}
    )


def _message(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "string_pattern_mismatch":
        pattern = item.get("ctx", {}).get("pattern", "")
        return f"does not match {pattern}"
    message = str(item["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message[:1].lower() + message[1:]
