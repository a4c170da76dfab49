"""Damaged files in a stage directory: recognised cheaply, moved aside (never deleted) with a
one-line warning, and leftovers of killed atomic writes removed. Torch-free: `status` uses it."""

from __future__ import annotations

import errno
import glob
import os
import re
import sys
import zipfile
from pathlib import Path

SUFFIX = ".damaged"


def torch_file_intact(path: Path) -> bool:
    """A cheap check of a torch.save file (a zip): its central directory reads, every member lies
    inside the file and the small pickle holding the structure passes its CRC. A truncated file
    fails; corruption inside a tensor's bytes is only found by a full load (torch.load)."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            pickles = [member for member in members if member.filename.endswith("/data.pkl")]
            if len(pickles) != 1 or any(member.header_offset + member.compress_size > size for member in members):
                return False
            archive.read(pickles[0])  # raises on a CRC mismatch
        return True
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, RuntimeError):  # zipfile's own errors for torn archives
        return False


def is_damaged(path: Path) -> bool:
    """A torch file that is there but torn, one moved aside and not yet recreated, or a path that
    runs into a symbolic link loop or a dangling link (its own or its directory's)."""
    if path.exists():
        return path.suffix == ".pt" and not torch_file_intact(path)
    return broken_link(path) or broken_link(path.parent) or path.with_name(path.name + SUFFIX).exists()


def broken_link(path: Path) -> bool:
    """A symbolic link that resolves to nothing: a loop or a missing target."""
    try:
        os.lstat(path)
    except OSError:
        return False
    return path.is_symlink() and not path.exists()


def link_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def move_aside(path: Path, reason: str) -> Path | None:
    """Rename `path` to `path.damaged` (or `.damaged.N`), keep it, and say so on stderr in one line."""
    target = path.with_name(path.name + SUFFIX)
    count = 1
    while target.exists() or target.is_symlink():
        target = path.with_name(f"{path.name}{SUFFIX}.{count}")
        count += 1
    try:
        path.rename(target)
    except FileNotFoundError:  # another rank or process moved it first
        return None
    print(
        f"warning: {path} is damaged ({reason}); moved it to {target.name} (kept, not deleted)",
        file=sys.stderr,
        flush=True,
    )
    return target


def remove_leftover_temps(directory: Path, names: list[str] | None, only_dead_writers: bool = False) -> list[Path]:
    """Delete the temp files killed atomic writes of `names` (None: of any file) left in `directory`
    (disco/atomic.py names them `.<name>.<pid>-<random>.tmp`): all of them for files written under
    the stage lock; with only_dead_writers, those whose writer no longer runs on this host (files
    that several processes may write at once: a report, a spec)."""
    removed = []
    for pattern in [f".{glob.escape(name)}.*.tmp" for name in names] if names is not None else [".*.tmp"]:
        for leftover in directory.glob(pattern):
            if only_dead_writers and _writer_alive(leftover.name):
                continue
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _writer_alive(temp_name: str) -> bool:
    """Is the writer named in `.<name>.<pid>-<random>.tmp` running here? (No pid in the name: assume so.)"""
    found = re.search(r"\.(\d+)-[^.]*\.tmp$", temp_name)
    if not found:
        return True
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: running
        return True
    return True


def previous_path(path: Path) -> Path:
    """Where the checkpoint before `path` is kept (disco.checkpoint_io.save_keeping_previous)."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")
