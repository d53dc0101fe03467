"""The distribution API's small pure pieces: repository names, references, Link
pagination, and the one-line wording of a registry's error answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ConfigError, StoreError
from ..oci.references import is_digest, is_tag

#: Docker Hub's names in image references, and the host its registry API answers on
#: (docker and containers/image make the same substitution).
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel\s*=\s*"?next"?', re.IGNORECASE)


def parse_repository(repository: str) -> tuple[str, str]:
    """``host[:port]/path`` → (host[:port], path), refusing what the distribution
    API would refuse later with a less readable message."""
    text = repository.strip()
    if "://" in text:
        raise ConfigError(
            f"repository {text!r}: write host[:port]/path without a scheme "
            "(insecure: true allows plain HTTP)"
        )
    host, sep, name = text.partition("/")
    if not sep or not name or not _HOST.fullmatch(host):
        raise ConfigError(f"repository {text!r}: expected host[:port]/path")
    if "@" in name or ":" in name:
        raise ConfigError(f"repository {text!r}: must not carry a tag or digest")
    for part in name.split("/"):
        if not _NAME_COMPONENT.fullmatch(part):
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
    if is_digest(reference) or is_tag(reference):
        return reference
    raise StoreError(f"invalid tag or digest {reference!r}")


def next_link(header: str | None) -> str | None:
    """The target of ``Link: <url>; rel="next"``, if any."""
    if not header:
        return None
    match = _LINK_NEXT.search(header)
    return match.group(1) if match else None


def error_summary(response: Any, body: bytes, limit: int = 300, detail: bool = True) -> str:
    """``<status> <CODE>: <message> (<detail>)`` from a registry answer (its
    ``status``, ``reason`` and ``body``). The body "MAY be in any format": JSON
    ``{"errors": [...]}`` is read when present, otherwise the first line of text is
    quoted; nothing here ever fails. ``detail`` off drops the ``detail`` members
    (for a 401 they only list the scopes)."""
    parts = [str(response.status)]
    text = _describe_errors(body, detail)
    if not text and body:
        first = body.decode("utf-8", "replace").strip().splitlines()
        text = first[0].strip() if first else ""
    text = text or response.reason or ""
    if text:
        parts.append(text)
    line = " ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _errors(body: bytes) -> list[Any]:
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return errors if isinstance(errors, list) else []


def _describe_errors(body: bytes, with_detail: bool = True) -> str:
    out = []
    for item in _errors(body)[:3]:
        if not isinstance(item, dict):
            continue
        code = str(item.get("code") or "").strip()
        message = str(item.get("message") or "").strip()
        detail = item.get("detail")
        piece = ": ".join(p for p in (code, message) if p)
        if with_detail and detail not in (None, "", [], {}):
            shown = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
            piece += f" ({shown[:120]})"
        if piece:
            out.append(piece)
    return "; ".join(out)


def error_code(body: bytes) -> str | None:
    """The first ``errors[].code`` of a registry answer, if it has one."""
    errors = _errors(body)
    if errors and isinstance(errors[0], dict) and errors[0].get("code"):
        return str(errors[0]["code"])
    return None
