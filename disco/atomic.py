"""Atomic file writes: a temp file in the same directory, fsynced, then renamed over the target,
so a reader never sees a half-written file (a crash leaves the previous version or nothing)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from disco.errors import DiskFull, disk_full, is_no_space
from disco.pause_points import pause_point


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name: a temp file left by a killed writer is told from one in flight
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from a shared group
        with os.fdopen(fd, "wb") as handle:
            view = memoryview(data)
            half = len(view) // 2
            handle.write(view[:half])
            pause_point(f"write:{path.name}")  # crash tests kill a run here, mid-write
            handle.write(view[half:])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_no_space(exc) and not isinstance(exc, DiskFull):
            raise disk_full(path, len(data)) from None
        raise
