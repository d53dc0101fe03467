"""Trust and authentication against real registries: TLS with a test CA (given
through ca_certs or LOCAL_CA_CERTIFICATE), htpasswd Basic over TLS, and the
Bearer-token flow with a token server the tests run."""

from __future__ import annotations

import logging
import os

import pytest

from builder_resource import certificates
from builder_resource.certificates import trusted_certificates
from builder_resource.errors import StoreError
from builder_resource.oci.blobs import BytesBlob
from builder_resource.oci.media_types import OCI_INDEX
from builder_resource.store.registry import RegistryStore, RetryPolicy
from builder_resource.store.transfer import parallel_push
from builder_resource.store.transport import Untrusted
from fixtures.pki import make_ca
from fixtures.registry import PASSWORD, USER
from fixtures.registry_content import make_version

pytestmark = pytest.mark.integration

FAST = RetryPolicy(tries=3, backoff=0.01)


def round_trip(store: RegistryStore, seed: str) -> None:
    version = make_version(seed)
    assert version.push(store, seed) == version.index_digest
    assert store.get_manifest(seed) == (version.index, OCI_INDEX)
    assert store.list_tags() == [seed]
    blob = version.blobs[0]
    with store.open_blob(blob.digest, blob.size) as stream:
        assert stream.read() == blob.data


def one_line_without_secrets(error: BaseException, *secrets: str) -> str:
    message = str(error)
    assert "\n" not in message
    for secret in secrets:
        assert secret not in message
        assert secret not in repr(error)
    return message


# -- TLS -------------------------------------------------------------------------


def test_tls_with_ca_certs(tls_registry, repo_name):
    store = RegistryStore(
        tls_registry.repository(repo_name), ca_certs=[tls_registry.ca_pem], policy=FAST
    )
    with store:
        round_trip(store, "tls")


def test_tls_with_local_ca_certificate_variable(tls_registry, repo_name, monkeypatch):
    monkeypatch.setenv("LOCAL_CA_CERTIFICATE", tls_registry.ca_pem)
    ca_certs = trusted_certificates([], os.environ)
    assert ca_certs == [tls_registry.ca_pem.strip() + "\n"]
    with RegistryStore(tls_registry.repository(repo_name), ca_certs=ca_certs, policy=FAST) as store:
        round_trip(store, "env")


def test_tls_without_the_ca_fails_clearly(tls_registry, repo_name):
    with (
        RegistryStore(tls_registry.repository(repo_name), policy=FAST) as store,
        pytest.raises(StoreError) as info,
    ):
        store.list_tags()
    message = one_line_without_secrets(info.value)
    assert "TLS certificate not trusted" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "ca_certs or LOCAL_CA_CERTIFICATE" in message


def test_lean_tls_trusts_the_ca_certs_without_writing_a_bundle(
    tls_registry, repo_name, monkeypatch
):
    """The lean transport verifies with the given CAs (and the system's, by hash)
    and needs no bundle file; a chain to any other CA it leaves to requests."""
    with RegistryStore(
        tls_registry.repository(repo_name), ca_certs=[tls_registry.ca_pem], policy=FAST
    ) as store:
        make_version("lean").push(store, "lean")

    def no_bundle(ca_certs: object) -> str:
        raise AssertionError("a CA bundle file was written")

    monkeypatch.setattr(certificates, "ca_bundle_file", no_bundle)
    repository = tls_registry.repository(repo_name)
    lean = {"lean": True, "hand_over": False, "env": {}, "policy": FAST}
    with RegistryStore(repository, ca_certs=[tls_registry.ca_pem], **lean) as store:
        assert store.list_tags() == ["lean"]
        assert not store.uses_requests
    with (
        RegistryStore(repository, ca_certs=[make_ca("another CA").cert_pem], **lean) as store,
        pytest.raises(Untrusted),
    ):
        store.list_tags()


def test_tls_insecure_skips_verification(tls_registry, repo_name, caplog):
    caplog.set_level(logging.INFO, logger="builder_resource")
    with RegistryStore(tls_registry.repository(repo_name), insecure=True, policy=FAST) as store:
        round_trip(store, "insecure-tls")
    assert "plain HTTP" not in caplog.text  # no fall back to plain HTTP


# -- Basic -----------------------------------------------------------------------


def basic_store(registry, name: str, **kwargs) -> RegistryStore:
    kwargs.setdefault("username", registry.username)
    kwargs.setdefault("password", registry.password)
    return RegistryStore(
        registry.repository(name), ca_certs=[registry.ca_pem], policy=FAST, **kwargs
    )


def test_basic_auth(basic_registry, repo_name):
    with basic_store(basic_registry, repo_name) as store:
        round_trip(store, "basic")
        assert store.auth.scheme == "basic"


def test_basic_wrong_password_is_one_clear_line(basic_registry, repo_name, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Pa55word"
    with (
        basic_store(basic_registry, repo_name, password=wrong) as store,
        pytest.raises(StoreError) as info,
    ):
        store.push_blob(BytesBlob(b"x"))
    message = one_line_without_secrets(info.value, wrong, PASSWORD)
    # a HEAD answer has no body: the status line is all there is to quote
    assert message == (
        f"registry {basic_registry.host}: authentication failed for user '{USER}' "
        "(401 Unauthorized)"
    )
    assert wrong not in caplog.text


def test_basic_without_credentials(basic_registry, repo_name):
    with (
        basic_store(basic_registry, repo_name, username=None, password=None) as store,
        pytest.raises(StoreError) as info,
    ):
        store.list_tags()
    message = one_line_without_secrets(info.value)
    assert "authentication required" in message and "set username and password" in message


# -- Bearer tokens ---------------------------------------------------------------


@pytest.fixture
def tokens(token_registry):
    server = token_registry.extra["tokens"]
    server.expired, server.key = 0, "token"
    return server


def token_store(registry, name: str, user: str = USER, password: str = PASSWORD):
    return RegistryStore(
        registry.repository(name), username=user, password=password, insecure=True, policy=FAST
    )


def requests_for(tokens, name: str) -> list[tuple[str | None, tuple[str, ...]]]:
    return [r for r in tokens.requests if any(name in s for s in r[1])]


def test_bearer_flow_caches_tokens_per_scope(token_registry, tokens, repo_name):
    with token_store(token_registry, repo_name) as store:
        round_trip(store, "bearer")
        version = make_version("again")
        version.push(store, "again")
        assert store.auth.scheme == "bearer"
    asked = requests_for(tokens, repo_name)
    # one pull token for the first HEAD, one pull+push token that serves the rest
    assert asked == [
        (USER, (f"repository:{repo_name}:pull",)),
        (USER, (f"repository:{repo_name}:pull,push",)),
    ]


def test_bearer_token_asked_again_on_401(token_registry, tokens, repo_name):
    tokens.expired = 1  # the first token is already expired: the registry says 401
    with token_store(token_registry, repo_name) as store:
        assert store.list_tags() == []
    assert len(requests_for(tokens, repo_name)) == 2


def test_bearer_accepts_access_token(token_registry, tokens, repo_name):
    tokens.key = "access_token"
    with token_store(token_registry, repo_name) as store:
        round_trip(store, "oauth")


def test_bearer_wrong_password_is_one_clear_line(token_registry, tokens, repo_name, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Pa55word"
    with (
        token_store(token_registry, repo_name, password=wrong) as store,
        pytest.raises(StoreError) as info,
    ):
        store.list_tags()
    message = one_line_without_secrets(info.value, wrong)
    assert message.startswith(
        f"registry {token_registry.host}: authentication failed for user '{USER}' (401"
    )
    assert wrong not in caplog.text


def test_bearer_missing_rights_are_denied(token_registry, tokens, repo_name):
    with token_store(token_registry, repo_name, "reader", "reader-pw") as store:
        assert store.list_tags() == []
        with pytest.raises(StoreError) as info:
            store.push_blob(BytesBlob(b"not allowed"))
    message = one_line_without_secrets(info.value, "reader-pw")
    assert "access denied for user 'reader'" in message


def test_bearer_anonymous_is_told_to_log_in(token_registry, tokens, repo_name):
    with (
        RegistryStore(token_registry.repository(repo_name), insecure=True, policy=FAST) as store,
        pytest.raises(StoreError, match="authentication required .*set username"),
    ):
        store.list_tags()


def test_bearer_parallel_push_shares_one_token(token_registry, tokens, repo_name):
    """Threads of one store wait for the one token fetch instead of each asking."""
    blobs = [BytesBlob(f"blob {i}".encode() * 1000) for i in range(12)]
    with token_store(token_registry, repo_name) as store:
        store.blob_exists(blobs[0].digest)  # the pull token
        assert parallel_push(store, blobs, workers=4) == 12
        assert all(store.blob_exists(b.digest) for b in blobs)
    assert len(requests_for(tokens, repo_name)) == 2
