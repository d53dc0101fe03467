"""The distribution API's small pure pieces: repository names, references, Link
pagination and ``WWW-Authenticate`` challenges.

No HTTP library and no dataclasses here: the registry client (``registry.py``,
``auth.py``) and check's light client (``light.py``) share these, and check must
not pay for importing requests to parse a header. Even ``re`` is imported where
a pattern is used (and ``re`` caches what it compiles): check's common case needs
none of them.
"""

from __future__ import annotations

from ..errors import ConfigError, StoreError
from ..versions import DIGEST_PATTERN as _DIGEST
from ..versions import TAG_PATTERN as _TAG

#: Token lifetime assumed when the server gives none, and the floor the spec sets.
MIN_TOKEN_SECONDS = 60
#: Renew a token this long before it expires, so a request never carries a stale one.
EXPIRY_MARGIN = 10

#: Docker Hub's names in image references, and the host its registry API answers on
#: (docker and containers/image make the same substitution).
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"

_HOST = (
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_NAME_COMPONENT = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"
_LINK_NEXT = r'<([^>]*)>\s*;[^,]*?\brel\s*=\s*"?next"?'


def parse_repository(repository: str) -> tuple[str, str]:
    """``host[:port]/path`` → (host[:port], path), refusing what the distribution
    API would refuse later with a less readable message."""
    import re

    text = repository.strip()
    if "://" in text:
        raise ConfigError(
            f"repository {text!r}: write host[:port]/path without a scheme "
            "(insecure: true allows plain HTTP)"
        )
    host, sep, name = text.partition("/")
    if not sep or not name or not re.match(_HOST, host):
        raise ConfigError(f"repository {text!r}: expected host[:port]/path")
    if "@" in name or ":" in name:
        raise ConfigError(f"repository {text!r}: must not carry a tag or digest")
    for part in name.split("/"):
        if not re.match(_NAME_COMPONENT, part):
            raise ConfigError(
                f"repository {text!r}: invalid path component {part!r} "
                "(lower-case letters and digits, separated by '.', '_', '__' or '-')"
            )
    if host in DOCKER_HUB_NAMES and "/" not in name:
        name = f"library/{name}"  # Docker Hub's official images
    return host, name


def api_host(registry: str) -> str:
    """Where ``registry``'s API answers: itself, or Docker Hub's API host for its
    reference names (``docker.io/v2/`` is a web page, not the registry)."""
    return DOCKER_HUB_API if registry in DOCKER_HUB_NAMES else registry


def probe_schemes(registry: str, insecure: bool) -> tuple[str, ...]:
    """The schemes to try, in order. HTTPS only, unless ``insecure``; then HTTPS
    first, as containers/image does, except on loopback, where nothing crosses a
    network and plain HTTP answers without the cost of a TLS context."""
    if not insecure:
        return ("https",)
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.strip("[]")
    if host == "localhost" or host == "::1" or host.startswith("127."):
        return ("http", "https")
    return ("https", "http")


def check_reference(reference: str) -> str:
    """A tag or a sha256 digest; anything else would be spliced into a URL."""
    import re

    if re.match(_DIGEST, reference) or re.match(_TAG, reference):
        return reference
    raise StoreError(f"invalid tag or digest {reference!r}")


def next_link(header: str | None) -> str | None:
    """The target of ``Link: <url>; rel="next"``, if any."""
    if not header:
        return None
    import re

    match = re.search(_LINK_NEXT, header, re.IGNORECASE)
    return match.group(1) if match else None


def repository_scope(name: str, *actions: str) -> str:
    return f"repository:{name}:{','.join(actions)}"


class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: ``Bearer realm=...``.
    Immutable by convention; equal when scheme and params are."""

    __slots__ = ("scheme", "params")

    def __init__(self, scheme: str, params: dict[str, str] | None = None) -> None:
        self.scheme = scheme  # lower case: "basic" or "bearer" (others are kept but unused)
        self.params: dict[str, str] = {} if params is None else params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Challenge):
            return NotImplemented
        return (self.scheme, self.params) == (other.scheme, other.params)

    __hash__ = None  # type: ignore[assignment]  # params is a dict

    def __repr__(self) -> str:
        return f"Challenge(scheme={self.scheme!r}, params={self.params!r})"


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = rf"\s*({_TOKEN})(?=\s|$|,)"
# Unquoted values are read up to a comma or space: lenient about realms like
# ``realm=https://a/t`` that some servers send unquoted.
_PARAM = rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*,?'


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge of a ``WWW-Authenticate`` value. Commas inside quoted values
    (``scope="repository:a:pull,push"``) stay where they belong."""
    import re

    out: list[Challenge] = []
    pos = 0
    header = header or ""
    scheme_pattern, param_pattern = re.compile(_SCHEME), re.compile(_PARAM)
    while pos < len(header):
        while pos < len(header) and header[pos] in " ,":
            pos += 1
        scheme = scheme_pattern.match(header, pos)
        if not scheme:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while True:
            param = param_pattern.match(header, pos)
            if not param:
                break
            # A token followed by a space and another token is the next scheme.
            value = param.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
            params[param.group(1).lower()] = value
            pos = param.end()
        out.append(Challenge(scheme.group(1).lower(), params))
    return out


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    """The challenge a client answers: Bearer before Basic; None for others."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None
