"""The process boundary, as thin as Concourse's own resources keep it.

Read stdin to EOF, argv and the environment; call one step; print one JSON value
on stdout. Everything else goes to stderr. An expected failure is one line
``error: ...`` and exit 1; a traceback only with ``source.debug: true``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

USAGE = "usage: python -m builder_resource check | in <dir> | out <dir>"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "in", "out"):
        sys.stderr.write(USAGE + "\n")
        return 2
    step = argv[0]
    debug = False
    try:
        text = sys.stdin.read()
        if step == "check" and (versions := _fast_check(text)) is not None:
            sys.stdout.write(json.dumps(versions) + "\n")
            sys.stdout.flush()
            return 0
        payload = _parse(text)
        debug = _wants_debug(payload)
        _configure_logging(debug)
        result = _dispatch(step, argv[1:], payload)
    except Exception as e:  # noqa: BLE001 - the one place every failure is reported
        return _report(e, debug)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def _dispatch(step: str, args: list[str], payload: Any) -> Any:
    # Steps are imported on demand: check must not pay for what put needs.
    from .errors import ConfigError

    env = dict(os.environ)
    # pydantic scans every installed distribution for plugins when it builds its
    # first model; we use none. Set after ``env`` is taken: the build keeps its own.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if step == "check":
        from . import check

        return check.run(payload, env)
    if len(args) != 1:
        raise ConfigError(f"{step}: expected one argument, the directory (got {len(args)})")
    from pathlib import Path

    directory = Path(args[0])
    run: Callable[[Any, Path, dict[str, str]], Any]
    if step == "in":
        from . import get

        run = get.run
    else:
        from . import put

        run = put.run
    return run(payload, directory, env)


def _fast_check(text: str) -> list[dict[str, str]] | None:
    """check's common case (``fastcheck.py``), or None when the full path must
    answer. ``BUILDER_RESOURCE_CHECK_TRACE=1`` writes one line saying which ran."""
    from .fastcheck import answer

    trace = os.environ.get("BUILDER_RESOURCE_CHECK_TRACE") == "1"
    try:
        versions, lines, how = answer(text, os.environ)
    except Exception as e:  # noqa: BLE001 - whatever it was, the full path decides
        if trace:
            sys.stderr.write(f"check: full path ({type(e).__name__}: {e})\n")
        return None
    for line in lines:
        sys.stderr.write(line + "\n")
    if trace:
        sys.stderr.write(f"check: fast path ({how})\n")
    return versions


def _parse(text: str) -> Any:
    from .errors import ConfigError

    if not text.strip():
        raise ConfigError("request: stdin is empty (expected a JSON object)")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"request: stdin is not valid JSON ({e})") from None
    except RecursionError:
        raise ConfigError("request: stdin nests JSON too deeply to be a request") from None


def _wants_debug(payload: Any) -> bool:
    source = payload.get("source") if isinstance(payload, dict) else None
    return isinstance(source, dict) and source.get("debug") is True


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    # debug: this package's detail and urllib3's connections; not every library's
    # (py-serializable, under cyclonedx, logs some 800 lines of set-up at DEBUG).
    logging.getLogger("builder_resource").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.DEBUG if debug else logging.WARNING)


def _report(error: Exception, debug: bool) -> int:
    from .errors import ResourceError

    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, ResourceError):
        message = str(error)
    else:
        message = f"internal error: {error!r}"
        if not debug:
            message += " (set source.debug: true for a traceback)"
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return 1
