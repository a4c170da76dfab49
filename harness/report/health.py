"""The final training health of the encoders behind a report (disco/health.py, docs/health.md)."""

from __future__ import annotations

from dataclasses import replace

from harness.matrix import CellPlan
from harness.report.model import StageHealth
from harness.report.roles import BASELINE_ROLE, TEACHER_ROLE, role_label
from harness.report.verdicts import (
    NOT_AVAILABLE,
)
from harness.stages import STALE, Stage
from harness.workspace import Workspace


def stage_health(role: str, stage: Stage, workspace: Workspace, cell: CellPlan | None = None) -> StageHealth:
    label = role_label(role, cell)
    if stage.kind not in ("pretrain", "distill"):
        return StageHealth(role, stage.name, NOT_AVAILABLE, label=label)
    found = stage.stored(workspace)
    if found.result is None or found.state == STALE:
        return StageHealth(role, stage.name, found.state, label=label)
    metrics = found.result.metrics
    reasons = tuple(metrics.get("health_reasons") or ())
    return StageHealth(role, stage.name, str(metrics.get("health", "unknown")), metrics, reasons, label)


def pair_health(cells: list[CellPlan], workspace: Workspace) -> list[StageHealth]:
    """The teacher once, then the baseline and each method's student of every seed."""
    entries = {cells[0].teacher.key: stage_health(TEACHER_ROLE, cells[0].teacher, workspace, cells[0])} if cells else {}
    for cell in cells:
        for role, stage in ((BASELINE_ROLE, cell.baseline), *cell.methods.items()):
            entry = stage_health(role, stage, workspace, cell)
            if len(cells) > 1:  # one row per seed: say which
                entry = replace(entry, label=f"{entry.label} · seed {cell.seed}")
            entries.setdefault(stage.key, entry)
    return list(entries.values())
