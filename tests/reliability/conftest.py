"""The reliability suite: seeded fault schedules across put, check and get; kill -9
at random moments of put; corrupted bodies; a fuzz of the request schema.

`make test` runs a small sample; `make reliability` runs the same tests with
``RELIABILITY_SCALE=10``. ``RELIABILITY_SEED`` changes the schedules (the seed is
printed, so that a failure can be replayed). The figures (faults injected, puts that
survived them, partial versions seen) are printed at the end of the run.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

SCALE = max(1, int(os.environ.get("RELIABILITY_SCALE", "1")))
SEED = int(os.environ.get("RELIABILITY_SEED", "20261130"))

#: Counted by the tests, reported at the end of the session.
FIGURES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability (seed {SEED}, scale {SCALE})")
    for name, count in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {count}")
