"""Errors in what disco was given or found (a recipe value, a dataset, a checkpoint, a missing back
end), as opposed to bugs in disco. disco never imports harness: these are its own.

Each message says what is wrong, where and how to fix it, on one line. The CLI shows it as
`error: <message>` and exits with the class's `exit_code` (the table in harness/errors.py and the
README); anything else is an internal error, exit 1.

    InputError          2  a bad value in a config, recipe, spec or option
    DataUnavailable     4  a dataset missing or not laid out as expected
    CheckpointError     5  a checkpoint unreadable, of no known format, or not fitting the model
    BackendUnavailable  6  an optional package or device this run needs is not installed here
    TrainingDiverged    7  a training step's loss was NaN or infinite: the stage stopped, no result
    DiskFull            8  a write found no space left: that file's previous version is intact
"""

from __future__ import annotations

import contextlib
import copy
import errno
import shutil
from pathlib import Path


class DiscoError(Exception):
    """A problem the user can fix; never a bug."""

    exit_code = 2

    def within(self, where: str) -> DiscoError:
        """The same error, its message prefixed by where it happened (a stage's name)."""
        located = copy.copy(self)
        located.args = (f"{where}: {self}",)
        return located


class InputError(DiscoError, ValueError):
    """Bad input: a recipe field out of range, an unknown name, a malformed spec. A ValueError, so
    callers that catch ValueError keep working."""

    exit_code = 2


class DataUnavailable(DiscoError):
    """A dataset is missing or not laid out as expected."""

    exit_code = 4


class CheckpointError(DiscoError):
    """A checkpoint cannot be read, is of no known format, or does not fit the model asked for."""

    exit_code = 5


class BackendUnavailable(DiscoError):
    """An optional package (DALI, detectron2) or device this run needs is not available here."""

    exit_code = 6


class TrainingDiverged(DiscoError):
    """A training step's loss is NaN or infinite: the stage stops before that step updates anything,
    keeps its last good checkpoint and stores no result (nothing is ever evaluated on it)."""

    exit_code = 7


class DiskFull(DiscoError, OSError):
    """A write found no space (or no quota) left on its filesystem. Every write of a checkpoint or a
    result is atomic (disco/atomic.py), so the file's previous version and every stored result are
    intact: free space and rerun, and the stage resumes from its last checkpoint."""

    exit_code = 8


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def disk_full(path: Path | str | None, needed_bytes: int | None = None) -> DiskFull:
    """The one line for a write that found its filesystem full: which file, what it needed, what is free."""
    where = Path(path) if path else None
    needed = f", needing {_size(needed_bytes)}" if needed_bytes else ""
    free = ""
    if where is not None:
        with contextlib.suppress(OSError):
            free = f"; {_size(shutil.disk_usage(_existing_parent(where)).free)} free there"
    target = f"writing {where}" if where else "writing"
    return DiskFull(
        f"no space left on the device {target}{needed}{free}. The previous version of that file and every "
        "stored result are intact: free space (or point --artifacts/--results elsewhere) and rerun; "
        "training resumes from its last checkpoint"
    )


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.1f} KiB"


def first_line(exc: BaseException, limit: int = 160) -> str:
    """`Type: first message line` of an exception (a parser's KeyError says only `101`), or its type
    alone when it has no message (an empty file's EOFError)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__
