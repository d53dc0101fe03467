"""check's light registry client against real registries (plain, TLS, Basic,
Bearer) and a scripted fake: it reads what ``RegistryStore`` reads, or it declines
(``Unsure``) and the full path takes over. It never answers differently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from builder_resource.oci.media_types import OCI_INDEX
from builder_resource.store.http import RetryPolicy
from builder_resource.store.light import LightRegistry, Memo, Unsure, Untrusted
from builder_resource.store.registry import RegistryStore
from fixtures.http_fakes import FakeRegistry
from fixtures.registry import Registry

pytestmark = pytest.mark.integration

FAST = RetryPolicy(tries=2, backoff=0.01)
DIGEST = "sha256:" + "c" * 64


class DictMemo(Memo):
    """The cache, in memory."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, Any]] = {}

    def load(self, kind: str, material: str) -> dict[str, Any] | None:
        return self.data.get((kind, material))

    def store(self, kind: str, material: str, value: dict[str, Any]) -> None:
        self.data[(kind, material)] = json.loads(json.dumps(value))

    def drop(self, kind: str, material: str) -> None:
        self.data.pop((kind, material), None)

    def kinds(self) -> list[str]:
        return sorted(kind for kind, _ in self.data)


def fill(store: RegistryStore, *tags: str) -> dict[str, str]:
    out = {}
    for tag in tags:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "t": tag})
        out[tag] = store.push_manifest(body.encode(), OCI_INDEX, tag)
    return out


def same_reads(light: LightRegistry, full: RegistryStore, *extra_tags: str) -> list[str]:
    tags = light.list_tags()
    assert sorted(tags) == sorted(full.list_tags())
    for tag in [*tags, *extra_tags]:
        assert light.resolve_tag(tag) == full.resolve_tag(tag), tag
    return tags


@pytest.mark.parametrize("kind", ["registry", "tls_registry", "basic_registry", "token_registry"])
def test_reads_agree_with_registry_store(
    kind: str, request: pytest.FixtureRequest, repo_name: str
) -> None:
    registry: Registry = request.getfixturevalue(kind)
    repository = registry.repository(repo_name)
    options = registry.client_options()
    with RegistryStore(repository, policy=FAST, **options) as full:
        memo = DictMemo()
        empty = LightRegistry(repository, memo=memo, **options)
        assert empty.list_tags() == [] and empty.resolve_tag("1.0") is None
        fill(full, "1.0", "1.1", "latest")
        light = LightRegistry(repository, memo=memo, **options)
        assert sorted(same_reads(light, full, "absent")) == ["1.0", "1.1", "latest"]
        light.close()
        # A second client reads the registry's scheme (and any token) from the memo.
        again = LightRegistry(repository, memo=memo, **options)
        same_reads(again, full)
        assert again.trace["probe"] == "memo"
        if kind == "token_registry":
            assert again.trace["token"] == "memo"
        plain = kind in ("registry", "token_registry")
        note = f"registry {registry.host}: using plain HTTP (insecure)"
        assert again.notes == ([note] if plain else [])


def test_bearer_token_is_fetched_once_then_remembered(token_registry: Registry, repo_name: str):
    repository = token_registry.repository(repo_name)
    options = token_registry.client_options()
    tokens = token_registry.extra["tokens"]
    with RegistryStore(repository, policy=FAST, **options) as full:
        fill(full, "1.0")
    memo = DictMemo()
    before = len(tokens.requests)
    for _ in range(3):
        light = LightRegistry(repository, memo=memo, **options)
        assert light.list_tags() == ["1.0"]
        light.close()
    assert len(tokens.requests) - before == 1
    assert tokens.requests[-1] == (token_registry.username, (f"repository:{repo_name}:pull",))
    # Another password is another key: no token is shared, and a wrong one declines.
    wrong = LightRegistry(repository, memo=memo, **{**options, "password": "wrong"})
    with pytest.raises(Unsure):
        wrong.list_tags()


def test_an_expired_or_revoked_token_is_fetched_again(token_registry: Registry, repo_name: str):
    repository = token_registry.repository(repo_name)
    options = token_registry.client_options()
    tokens = token_registry.extra["tokens"]
    with RegistryStore(repository, policy=FAST, **options) as full:
        fill(full, "1.0")
    memo = DictMemo()
    tokens.expired = 1  # the registry refuses the first token: 401, fetch once more
    light = LightRegistry(repository, memo=memo, **options)
    assert light.list_tags() == ["1.0"]
    (token,) = [v for (kind, _), v in memo.data.items() if kind == "token"]
    token["expires"] = 0  # the remembered one has run out
    light = LightRegistry(repository, memo=memo, **options)
    assert light.list_tags() == ["1.0"] and light.trace["token"] == "fetched"


def test_wrong_credentials_and_missing_trust_decline(
    basic_registry: Registry, tls_registry: Registry, repo_name: str
) -> None:
    options = basic_registry.client_options()
    wrong = LightRegistry(
        basic_registry.repository(repo_name), memo=DictMemo(), **{**options, "password": "no"}
    )
    with pytest.raises(Unsure):
        wrong.list_tags()
    anonymous = LightRegistry(basic_registry.repository(repo_name), ca_certs=options["ca_certs"])
    with pytest.raises(Unsure):
        anonymous.list_tags()
    untrusted = LightRegistry(tls_registry.repository(repo_name))
    with pytest.raises(Untrusted):
        untrusted.list_tags()
    # insecure: HTTPS without verification, as the full client does.
    unverified = LightRegistry(tls_registry.repository(repo_name), insecure=True)
    assert unverified.list_tags() == [] and unverified.notes == []


def test_a_remembered_scheme_that_no_longer_works_declines(registry: Registry, repo_name: str):
    repository = registry.repository(repo_name)
    memo = DictMemo()
    light = LightRegistry(repository, insecure=True, memo=memo)
    assert light.list_tags() == []
    ((kind, material),) = memo.data
    memo.data[(kind, material)] = {"scheme": "https", "challenge": None}
    stale = LightRegistry(repository, insecure=True, memo=memo)
    with pytest.raises(Unsure):
        stale.list_tags()
    stale.forget()  # what fastcheck does before the full path runs
    assert memo.data == {}


# -- a scripted registry for what a real one does not show -----------------------------


def tags_route(names: list[str], **headers: str):
    def reply(h) -> None:
        body = json.dumps({"name": "team/app", "tags": names}).encode()
        h.reply(200, body, {"Content-Type": "application/json", **headers})

    return reply


def head_route(digest: str | None = DIGEST):
    def reply(h) -> None:
        h.reply(200, b"", {"Docker-Content-Digest": digest} if digest else {})

    return reply


def light_on(fake: FakeRegistry) -> LightRegistry:
    return LightRegistry(f"{fake.host}/team/app", insecure=True, memo=DictMemo())


def full_on(fake: FakeRegistry) -> RegistryStore:
    return RegistryStore(f"{fake.host}/team/app", insecure=True, policy=FAST)


def test_link_pages_on_the_same_origin_are_followed() -> None:
    pages = {"": ["a", "b"], "b": ["c", "d"], "d": ["e"]}

    def tags(h) -> None:
        last = h.path.partition("last=")[2]
        headers = {"Content-Type": "application/json"}
        if last == "":
            headers["Link"] = '</v2/team/app/tags/list?n=2&last=b>; rel="next"'
        elif last == "b":
            headers["Link"] = (
                f'<http://{fake.host}/v2/team/app/tags/list?n=2&last=a>; rel="prev", '
                f'<http://{fake.host}/v2/team/app/tags/list?n=2&last=d>; rel="next"'
            )
        h.reply(200, json.dumps({"tags": pages[last]}).encode(), headers)

    with FakeRegistry() as fake:
        fake.route("GET", r"/v2/team/app/tags/list", tags)
        assert light_on(fake).list_tags() == full_on(fake).list_tags() == list("abcde")


def chunked(h) -> None:
    body = json.dumps({"tags": ["x", "y"]}).encode()
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for piece in (body[:5], body[5:]):
        h.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
    h.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (tags_route(["b", "a", "a"]), ["b", "a"]),
        (tags_route([], Connection="close"), []),
        (lambda h: h.reply(200, b'{"tags": null}'), []),
        (lambda h: h.reply(200, b'{"tags": ["a", 1, null]}'), ["a"]),
        (lambda h: h.reply(404, b"{}"), []),
        (chunked, ["x", "y"]),
    ],
)
def test_tag_listings_read_alike(route, expected) -> None:
    with FakeRegistry() as fake:
        fake.route("GET", r"/tags/list", route)
        fake.route("HEAD", r"/manifests/", head_route())
        light = light_on(fake)
        assert light.list_tags() == full_on(fake).list_tags() == expected
        assert light.resolve_tag("a") == DIGEST  # the connection is still usable


@pytest.mark.parametrize(
    "route",
    [
        tags_route(["a"], Link='<http://127.0.0.2:1/v2/team/app/tags/list?last=a>; rel="next"'),
        tags_route(["a"], Link='<list?last=a>; rel="next"'),
        lambda h: h.reply(307, b"", {"Location": "/elsewhere"}),
        lambda h: h.reply(500, b"{}"),
        lambda h: h.reply(429, b"{}", {"Retry-After": "1"}),
        lambda h: h.reply(401, b"{}"),
        lambda h: h.reply(403, b"{}"),
        lambda h: h.reply(200, b"not json"),
        lambda h: h.reply(200, b"[]"),
        lambda h: h.reply(200, '{"tags": ["é"]}'.encode()),
        lambda h: h.reply(200, b'{"tags": []}', {"Content-Encoding": "gzip"}),
    ],
)
def test_unusual_listings_decline(route) -> None:
    with FakeRegistry() as fake:
        fake.route("GET", r"/tags/list", route)
        with pytest.raises(Unsure):
            light_on(fake).list_tags()


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (head_route(), DIGEST),
        (lambda h: h.reply(404), None),
    ],
)
def test_manifest_heads_read_alike(route, expected) -> None:
    with FakeRegistry() as fake:
        fake.route("HEAD", r"/manifests/1\.0$", route)
        light = light_on(fake)
        assert light.resolve_tag("1.0") == full_on(fake).resolve_tag("1.0") == expected
        heads = [s for s in fake.seen if s.method == "HEAD"]
        accepts = {s.headers.get("Accept") for s in heads}
        assert len(accepts) == 1  # the same Accept list as the full client's


@pytest.mark.parametrize(
    "route",
    [
        head_route(None),  # no digest header: the full client would GET and hash
        head_route("sha256:short"),
        lambda h: h.reply(302, b"", {"Location": "/x"}),
        lambda h: h.reply(503),
    ],
)
def test_unusual_heads_decline(route) -> None:
    with FakeRegistry() as fake:
        fake.route("HEAD", r"/manifests/", route)
        with pytest.raises(Unsure):
            light_on(fake).resolve_tag("1.0")
    with pytest.raises(Unsure):  # nothing that is not a tag goes into a URL
        light_on(fake).resolve_tag("../x")


def test_basic_challenge_from_the_ping_is_answered_up_front() -> None:
    with FakeRegistry(challenge='Basic realm="fake"') as fake:
        fake.route("GET", r"/tags/list", tags_route(["a"]))
        light = LightRegistry(
            f"{fake.host}/team/app", insecure=True, username="u", password="p", memo=DictMemo()
        )
        assert light.list_tags() == ["a"]
        listing = [s for s in fake.seen if s.path.endswith("/tags/list")]
        assert listing[0].headers["Authorization"] == "Basic dTpw"
        assert listing[0].headers["User-Agent"] == "concourse-builder-img"


def test_a_bearer_challenge_without_a_usable_realm_declines() -> None:
    with FakeRegistry(challenge='Bearer realm="ftp://x/token"') as fake:
        fake.route("GET", r"/tags/list", tags_route(["a"]))
        with pytest.raises(Unsure):
            light_on(fake).list_tags()


def test_an_idle_connection_closed_by_the_server_is_reopened() -> None:
    with FakeRegistry() as fake:
        fake.route("GET", r"/tags/list", tags_route(["a"]))
        fake.route("HEAD", r"/manifests/", head_route())
        light = light_on(fake)
        assert light.list_tags() == ["a"]
        (open_one,) = [c for c in light._connections.values() if c._sock is not None]
        open_one._sock.shutdown(0)  # as if the server had closed it meanwhile
        # The request on the dead connection fails; one retry on a new one.
        assert light.resolve_tag("a") == DIGEST


# -- the HTTP client on raw answers ------------------------------------------------------


class RawServer:
    """Answers every request on 127.0.0.1 with the same bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        import socket
        import threading

        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.netloc = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                connection.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()


def raw_get(answer: bytes, headers: dict[str, str] | None = None):
    from builder_resource.store.light import Connection

    server = RawServer(answer)
    try:
        return Connection("http", server.netloc).request("GET", "/x", headers or {})
    finally:
        server.close()


def test_raw_answers_the_client_reads() -> None:
    ok = raw_get(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\nhi")
    assert (ok.status, ok.body, ok.header("x-a")) == (200, b"hi", "1, 2")
    chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    assert raw_get(chunks).body == b"hi"
    to_close = raw_get(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    assert to_close.body == b"until the end"
    assert raw_get(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n").status == 404


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nhi\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: header\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n",
        b"",
    ],
)
def test_raw_answers_the_client_declines(answer: bytes) -> None:
    with pytest.raises(Unsure):
        raw_get(answer)


def test_header_values_cannot_smuggle_lines() -> None:
    with pytest.raises(Unsure):
        raw_get(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {"Authorization": "x\r\nY: z"})
