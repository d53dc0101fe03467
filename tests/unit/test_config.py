"""Configuration parsing: every mistake named by its path, never its value."""

from __future__ import annotations

import pytest

from builder_resource.config import CheckRequest, InRequest, OutRequest, parse_request
from builder_resource.errors import ConfigError


def error_of(model, payload) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_request(model, payload)
    return str(caught.value)


def test_defaults_and_null_source_handling() -> None:
    request = parse_request(
        OutRequest, {"source": {"repository": "/s"}, "params": {"context": "src"}}
    )
    assert request.source.command == "make release"
    assert request.source.output == "release"
    assert request.source.builder is None
    assert request.params.env == {}
    assert error_of(CheckRequest, {"source": None}) == "source.repository: field required"


def test_typos_and_missing_keys_are_named() -> None:
    assert error_of(CheckRequest, {"source": {"repository": "/s", "usrname": "x"}}) == (
        "source.usrname: unknown key"
    )
    assert (
        error_of(OutRequest, {"source": {"repository": "/s"}}) == "params.context: field required"
    )
    assert error_of(
        OutRequest, {"source": {"repository": "/s"}, "params": {"context": "s", "verison": "1"}}
    ) == ("params.verison: unknown key")
    assert error_of(
        CheckRequest, {"source": {"repository": "/s", "registries": [{"host": "h"}]}}
    ) == (
        "source.registries.0.username: field required; source.registries.0.password: field required"
    )


def test_secrets_never_appear_in_errors() -> None:
    message = error_of(
        CheckRequest,
        {"source": {"repository": "/s", "password": "p@ss-secret", "ca_certs": "not-a-list"}},
    )
    assert "p@ss-secret" not in message
    assert "source.ca_certs: input should be a valid list" in message
    request = parse_request(
        CheckRequest, {"source": {"repository": "/s", "username": "u", "password": "p@ss-secret"}}
    )
    assert "p@ss-secret" not in repr(request) and "p@ss-secret" not in str(request.source)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"context": "s", "output": "../up"}, "params.output: must be a relative path"),
        ({"context": "s", "output": "/abs"}, "params.output: must be a relative path"),
        ({"context": "s", "version": "1", "version_file": "v"}, "params: give version or"),
        ({"context": "s", "version": "has space"}, "params.version: does not match"),
    ],
)
def test_put_params_are_checked(params: dict, message: str) -> None:
    assert error_of(OutRequest, {"source": {"repository": "/s"}, "params": params}).startswith(
        message
    )


def test_tag_regex_must_compile_and_get_params() -> None:
    assert error_of(CheckRequest, {"source": {"repository": "/s", "tag_regex": "("}}).startswith(
        "source.tag_regex: not a valid regular expression"
    )
    version = {"tag": "1.0.0", "digest": "sha256:" + "a" * 64}
    request = parse_request(InRequest, {"source": {"repository": "/s"}, "version": version})
    assert request.params.format == "docker" and request.params.rootfs is False
    request = parse_request(
        InRequest,
        {"source": {"repository": "/s"}, "version": version, "params": {"rootfs": ["app"]}},
    )
    assert request.params.rootfs == ["app"]
