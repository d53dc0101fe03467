"""The pure parts of the registry client: header parsing, retry delays, error
lines, names, progress, CA bundles, the transfer pool, and when the lean
transport hands over to requests."""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder_resource.certificates import Trust, ca_bundle_file
from builder_resource.errors import ConfigError, StoreError
from builder_resource.store.auth import Challenge, covers, parse_challenges
from builder_resource.store.progress import Progress
from builder_resource.store.registry import RegistryStore, RetryPolicy, retry_after_seconds
from builder_resource.store.stdlib_transport import MAX_BODY, StdlibTransport, proxied
from builder_resource.store.transfer import parallel
from builder_resource.store.transport import Unsure
from builder_resource.store.wire import (
    check_reference,
    error_summary,
    next_link,
    parse_repository,
)
from fixtures.http_fakes import FakeRegistry
from fixtures.pki import make_ca


@dataclass
class Answer:
    status: int
    reason: str = ""


def summary(status: int, body: bytes = b"", **kwargs: bool) -> str:
    reason = {401: "Unauthorized", 503: "Service Unavailable"}.get(status, "")
    return error_summary(Answer(status, reason), body, **kwargs)


# -- WWW-Authenticate ------------------------------------------------------------


def test_bearer_challenge_with_commas_in_quotes():
    header = (
        'Bearer realm="https://auth.example.org/token",service="registry.example.org",'
        'scope="repository:samalba/my-app:pull,push",error="insufficient_scope"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example.org/token",
                "service": "registry.example.org",
                "scope": "repository:samalba/my-app:pull,push",
                "error": "insufficient_scope",
            },
        )
    ]


def test_several_challenges_and_odd_spacing():
    header = 'Basic realm="Registry Realm" , BEARER realm=https://a/t, service = "s\\"x"'
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": "Registry Realm"}),
        Challenge("bearer", {"realm": "https://a/t", "service": 's"x'}),
    ]
    assert parse_challenges("") == []
    assert parse_challenges("Negotiate") == [Challenge("negotiate", {})]


def test_scope_cover_handles_ports_in_names():
    push = frozenset({"repository:localhost:5000/app:pull,push"})
    assert covers(push, frozenset({"repository:localhost:5000/app:pull"}))
    assert not covers(push, frozenset({"repository:localhost:5000/other:pull"}))
    assert not covers(frozenset({"repository:app:pull"}), frozenset({"repository:app:push"}))


# -- retries ---------------------------------------------------------------------


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds("7") == 7.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retry_after_seconds(date, now=now) <= 31
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_doubles_up_to_the_cap_and_obeys_retry_after():
    policy = RetryPolicy(backoff=0.5, cap=3.0, max_retry_after=10.0)
    assert [policy.delay(i) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(0, "4") == 4.0
    assert policy.delay(0, "999") == 10.0
    assert policy.delay(2, "x") == 2.0


# -- error lines -----------------------------------------------------------------


def test_error_summary_reads_registry_errors_defensively():
    body = (
        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown",'
        b'"detail":{"Tag":"nope"}},{"code":"BLOB_UNKNOWN","message":"blob unknown",'
        b'"detail":"sha256:00"}]}'
    )
    assert summary(404, body) == (
        '404 MANIFEST_UNKNOWN: manifest unknown ({"Tag": "nope"}); '
        "BLOB_UNKNOWN: blob unknown (sha256:00)"
    )
    assert summary(404, body, detail=False) == (
        "404 MANIFEST_UNKNOWN: manifest unknown; BLOB_UNKNOWN: blob unknown"
    )
    assert summary(502, b"<html>\n<h1>Bad gateway</h1>") == "502 <html>"
    assert summary(503) == "503 Service Unavailable"
    assert summary(500, b'{"errors": "weird"}') == '500 {"errors": "weird"}'
    assert summary(500, b'{"errors":[1,null,{"code":"X"}]}') == "500 X"
    assert len(summary(500, b"x" * 5000)) == 300


# -- names -----------------------------------------------------------------------


def test_repository_names():
    assert parse_repository("127.0.0.1:5000/team/app") == ("127.0.0.1:5000", "team/app")
    assert parse_repository("registry.example.org/a.b/c_d/e--f") == (
        "registry.example.org",
        "a.b/c_d/e--f",
    )
    assert parse_repository("[::1]:5000/app") == ("[::1]:5000", "app")
    for bad in ("app", "host/", "host/App", "host/a//b", "http://host/a", "host/a:1", "-h/a"):
        with pytest.raises(ConfigError):
            parse_repository(bad)


def test_docker_hub_names_and_its_api_host(mocker):
    """``docker.io/…`` as users write it; the API answers on registry-1.docker.io
    (the client pings that host, and nothing else changes)."""
    assert parse_repository("docker.io/alpine") == ("docker.io", "library/alpine")
    assert parse_repository("index.docker.io/team/app") == ("index.docker.io", "team/app")
    assert parse_repository("quay.io/alpine") == ("quay.io", "alpine")
    full = RegistryStore("docker.io/team/app")
    assert full.location == "docker.io/team/app"
    ping = mocker.patch.object(RegistryStore, "_request", side_effect=StoreError("offline"))
    with pytest.raises(StoreError):
        full.resolve_tag("1.0")
    assert ping.call_args.args[1] == "https://registry-1.docker.io/v2/"


def test_references():
    assert check_reference("1.0.0-rc.1_x") == "1.0.0-rc.1_x"
    assert check_reference("sha256:" + "a" * 64)
    for bad in ("", "../x", "a/b", "-x", "x" * 129, "sha256:abc", "a?b"):
        with pytest.raises(StoreError):
            check_reference(bad)


def test_next_link():
    assert next_link('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    assert next_link('<http://x/1>; rel="prev", <http://x/3>; rel=next') == "http://x/3"
    assert next_link('<http://x/1>; rel="prev"') is None
    assert next_link(None) is None


# -- progress --------------------------------------------------------------------


def test_progress_is_quiet_when_quick_and_periodic_when_slow(caplog):
    caplog.set_level(logging.INFO, logger="builder_resource")
    now = [0.0]
    quick = Progress("push a", 10 << 20, clock=lambda: now[0])
    for _ in range(10):
        quick.update(1 << 20)
    quick.finish()
    assert caplog.records == []

    slow = Progress("push b", 100 << 20, quiet_for=3, interval=5, clock=lambda: now[0])
    for _ in range(100):  # 1 MiB every 0.1 s: 10 s in all
        now[0] += 0.1
        slow.update(1 << 20)
    slow.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("push b: 30.0 MiB of 100.0 MiB (30%), 10.0 MiB/s")
    assert len(lines) == 3  # at 3 s, at 8 s, and the total
    assert lines[-1] == "push b: 100.0 MiB in 10.0 s (10.0 MiB/s)"


# -- CA bundles ------------------------------------------------------------------

FAKE_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_ca_bundle_refuses_a_broken_certificate():
    with pytest.raises(ConfigError, match="CA certificate 1 is not a valid PEM"):
        ca_bundle_file([FAKE_PEM])
    with pytest.raises(ConfigError, match="CA certificate 1 is not a valid PEM"):
        Trust((FAKE_PEM,))


# -- the pool --------------------------------------------------------------------


def test_parallel_keeps_order_and_bounds_threads():
    running, peak, lock = [0], [0], threading.Lock()

    def task(i: int):
        def run() -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
            return i

        return run

    assert parallel([task(i) for i in range(10)], workers=3) == list(range(10))
    assert peak[0] <= 3


def test_parallel_raises_the_first_failure_and_drops_pending_tasks():
    started = []

    def ok(i: int):
        def run() -> None:
            started.append(i)
            time.sleep(0.05)

        return run

    def boom() -> None:
        raise StoreError("boom")

    with pytest.raises(StoreError, match="boom"):
        parallel([boom, *[ok(i) for i in range(20)]], workers=2)
    assert len(started) < 20


def test_probe_order_puts_plain_http_first_only_on_insecure_loopback():
    from builder_resource.store.wire import probe_schemes

    assert probe_schemes("registry.example.org", insecure=False) == ("https",)
    assert probe_schemes("127.0.0.1:5000", insecure=False) == ("https",)
    assert probe_schemes("registry.example.org:5000", insecure=True) == ("https", "http")
    assert probe_schemes("10.0.0.7:5000", insecure=True) == ("https", "http")
    for loopback in ("127.0.0.1:5000", "127.1.2.3", "localhost:5000", "[::1]:5000"):
        assert probe_schemes(loopback, insecure=True) == ("http", "https")


# -- the lean transport's hand-over ----------------------------------------------


def test_a_netrc_or_an_environment_ca_bundle_is_unusual(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    public = Trust()
    StdlibTransport(public, {**home, "no_proxy": "*", "PATH": "/bin", "https_proxy": "x"})
    (tmp_path / "n").write_text("")
    with pytest.raises(Unsure, match="netrc"):
        StdlibTransport(public, {**home, "NETRC": str(tmp_path / "n")})
    with pytest.raises(Unsure, match="CA bundle"):
        StdlibTransport(public, {**home, "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/x.pem"})
    # requests takes an environment bundle only for its default trust: not for an
    # insecure registry, nor for one whose CAs the source gives.
    for trust in (Trust(insecure=True), Trust((make_ca().cert_pem,))):
        StdlibTransport(trust, {**home, "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/x.pem"})
        StdlibTransport(trust, {**home, "CURL_CA_BUNDLE": "/etc/ssl/certs/x.pem"})
    (tmp_path / ".netrc").write_text("")
    with pytest.raises(Unsure, match="netrc"):
        StdlibTransport(public, home)


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [
        ("", False),
        ("*", True),
        ("127.0.0.0/8", True),
        ("localhost,127.0.0.1", True),
        ("10.0.0.0/8", False),
    ],
)
def test_a_proxy_variable_means_requests_unless_no_proxy_names_the_host(
    no_proxy: str, direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:5000/v2/"
    assert not proxied(url, {"PATH": "/bin", "https_proxy": ""})  # no proxy at all
    env = {"https_proxy": "http://proxy:3128", "no_proxy": no_proxy}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # requests reads os.environ
    assert proxied(url, env) is not direct


def test_the_lean_transport_declines_streamed_uploads_and_large_answers() -> None:
    """A streamed answer (a manifest) is read whole like any other, up to the lean
    transport's limit; past it, and for an upload in pieces, requests takes over."""
    lean = StdlibTransport(Trust(insecure=True), {})
    with pytest.raises(Unsure, match="streamed"):
        lean.request("PUT", "http://127.0.0.1:9/v2/", {}, iter([b"x"]))
    manifest, large = b'{"schemaVersion": 2}', b"x" * (MAX_BODY + 1)
    with FakeRegistry() as fake:
        fake.route("GET", r"/manifests/small$", lambda h: h.reply(200, manifest))
        fake.route("GET", r"/manifests/large$", lambda h: h.reply(200, large))
        answer = lean.request("GET", f"http://{fake.host}/v2/a/manifests/small", {}, stream=True)
        assert (answer.status, answer.read(1 << 20)) == (200, manifest)
        with pytest.raises(Unsure, match="a large body"):
            lean.request("GET", f"http://{fake.host}/v2/a/manifests/large", {}, stream=True)
    lean.close()


def test_where_the_lean_transport_declines_requests_answers() -> None:
    """Nothing listens on port 9: the lean transport declines the refused
    connection, and requests, from then on, gives the error (or, for check's fast
    path, the caller hears that the lean transport declined)."""
    once = RetryPolicy(tries=1)
    store = RegistryStore("127.0.0.1:9/app", insecure=True, lean=True, env={}, policy=once)
    assert not store.uses_requests
    with pytest.raises(StoreError, match="registry 127.0.0.1:9: GET /v2/: .*refused"):
        store.list_tags()
    assert store.uses_requests
    refusing = RegistryStore(
        "127.0.0.1:9/app", insecure=True, lean=True, hand_over=False, env={}, policy=once
    )
    with pytest.raises(Unsure, match="connection"):
        refusing.list_tags()
    assert not refusing.uses_requests
