"""Where checkpoints (artifacts) and JSON results live, and atomic writes into them."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disco.atomic import atomic_write_bytes
from disco.damaged import broken_link, link_loop, move_aside
from harness.errors import UserError

RUNS_DIR = Path("runs")  # this machine's runs: git-ignored; the committed reference run is results/reference


@dataclass(frozen=True)
class Workspace:
    artifacts: Path  # checkpoints and stage specs (not committed)
    results: Path  # one JSON per stage, reports (committed for the tiny profile)

    def stage_dir(self, stage_name: str, key: str) -> Path:
        return self.artifacts / "stages" / f"{stage_name}-{key[:10]}"

    def result_path(self, profile: str, stage_name: str) -> Path:
        return self.results / profile / "stages" / f"{stage_name}.json"

    def ensure_writable(self) -> None:
        for path in (self.artifacts, self.artifacts / "stages", self.results):
            try:
                path.mkdir(parents=True, exist_ok=True)
                probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-", delete=True)
                probe.close()
            except OSError as exc:
                raise UserError(
                    f"output directory '{path}' is not writable ({exc.strerror}); choose another with "
                    f"--artifacts/--results or fix its permissions"
                ) from None


def ensure_directory(path: Path) -> None:
    """`path` as a directory: a symbolic link loop or a file in its place is moved aside (kept); a
    link to a missing target is the user's to restore."""
    if broken_link(path):
        if not link_loop(path):
            raise UserError(
                f"{path} is a symbolic link to a missing target ({os.readlink(path)}); restore or mount it, or remove the link"
            )
        move_aside(path, "a symbolic link loop")
    elif path.exists() and not path.is_dir():
        move_aside(path, "not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the directory {path} ({exc.strerror or exc}); check --artifacts/--results and the links under them"
        ) from None


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any | None:
    """The parsed file, or None if it is missing or not valid JSON (a corrupt file is never 'done')."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
