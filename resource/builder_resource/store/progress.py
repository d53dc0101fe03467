"""Progress of one long transfer, on the log (stderr), now and then.

A transfer that ends within a few seconds says nothing; a longer one logs bytes
done and rate every ``interval`` seconds and once more when it ends, so that a
Concourse build log shows a big layer moving without drowning in lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("builder_resource.store")

MiB = 1 << 20
#: A transfer quicker than this logs nothing; a slower one logs every INTERVAL seconds.
QUIET_FOR = 3.0
INTERVAL = 5.0


def human(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


class Progress:
    """Counts the bytes of one transfer and logs about it when it is slow.

    ``update`` is cheap (a clock read and an addition) so it can be called for
    every 1 MiB chunk."""

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        quiet_for: float | None = None,
        interval: float | None = None,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self._quiet_for = QUIET_FOR if quiet_for is None else quiet_for
        self._interval = INTERVAL if interval is None else interval
        self._log = logger
        self._clock = clock
        self._start = clock()
        self._next = self._start + self._quiet_for
        self._reported = False
        self._lock = threading.Lock()

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = self._clock()
            if now < self._next:
                return
            self._next = now + self._interval
            self._reported = True
        self._log.info("%s: %s", self.what, self._status(now))

    def restart(self) -> None:
        """The transfer starts over (a retry): count from zero again."""
        with self._lock:
            self.done = 0

    def finish(self) -> None:
        """Log the total when the transfer was slow enough to have been reported."""
        now = self._clock()
        if self._reported or now - self._start >= self._quiet_for:
            elapsed = max(now - self._start, 1e-6)
            self._log.info(
                "%s: %s in %.1f s (%s/s)",
                self.what,
                human(self.done),
                elapsed,
                human(self.done / elapsed),
            )

    def _status(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-6)
        rate = human(self.done / elapsed) + "/s"
        if self.total:
            pct = 100.0 * self.done / self.total
            return f"{human(self.done)} of {human(self.total)} ({pct:.0f}%), {rate}"
        return f"{human(self.done)}, {rate}"
