"""Clearing what a killed run left behind.

A put or get killed with -9 (a worker restarting, a build aborted) leaves its
temporaries: ``builder-put-*`` and ``builder-build-*`` folders in ``TMPDIR``, and
``.tmp-*`` files among a layout store's blobs. None blocks anything, but they fill
the disk; the next run clears those old enough that no live run can own them.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: No put or get runs this long between touching a temporary and finishing with it.
STALE_AFTER = 3600.0


def remove_stale(directory: Path, pattern: str, older_than: float = STALE_AFTER) -> int:
    """Remove the entries of ``directory`` matching ``pattern`` last modified more
    than ``older_than`` seconds ago; return how many. Errors are logged, never raised:
    clearing up must not fail the run that does it."""
    cutoff = time.time() - older_than
    removed = 0
    try:
        candidates = list(directory.glob(pattern))
    except OSError:
        return 0
    for path in candidates:
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError as e:
            log.debug("left %s: %s", path, e)
    if removed:
        log.info(
            "cleared %d stale temporar%s in %s", removed, "y" if removed == 1 else "ies", directory
        )
    return removed
