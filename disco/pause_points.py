"""Pause points for crash tests. With DISCO_PAUSE_AT=<pattern>[#n] a process stops itself (SIGSTOP)
the n-th time it reaches a point whose name matches <pattern> (fnmatch), after writing its pid and
the point's name to DISCO_PAUSE_MARKER; the test then SIGKILLs it there: an exact place, no timing.
Unset (always, outside tests) a pause point does nothing."""

from __future__ import annotations

import fnmatch
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

_reached: Counter[str] = Counter()


def pause_point(name: str) -> None:
    wanted = os.environ.get("DISCO_PAUSE_AT")
    if not wanted:
        return
    pattern, _, nth = wanted.partition("#")
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _reached[pattern] += 1
    if _reached[pattern] != int(nth or 1):
        return
    marker = os.environ.get("DISCO_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(f"{os.getpid()} {name}\n")
    os.kill(os.getpid(), signal.SIGSTOP)


def with_pause_points(prefix: str, progress: Callable[..., None] | None) -> Callable[..., None] | None:
    """`progress` (phase, done, total[, info]), with a pause point `<prefix>:<phase>:<done>` at each report."""
    if not os.environ.get("DISCO_PAUSE_AT"):
        return progress

    def report(phase: str, done: int, total: int, *info: object) -> None:
        pause_point(f"{prefix}:{phase}:{done}")
        if progress:
            progress(phase, done, total, *info)

    return report
