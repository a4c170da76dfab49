"""Comparison tables: measured vs the paper, per cell."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from harness.config import Benchmarks
from harness.matrix import CellPlan
from harness.results import load_result
from harness.workspace import Workspace

ROLE_LABELS = {"random_init": "random-init student (control)", "baseline": "MoCo-v2 student baseline", "disco": "DisCo student", "teacher": "MoCo-v2 teacher"}


def fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def metric(workspace: Workspace, plan: CellPlan, role: str, evaluation: str, name: str = "top1") -> float | None:
    stage = plan.evals.get((role, evaluation))
    if stage is None:
        return None
    result = load_result(workspace.result_path(stage.profile, stage.name))
    if result is None or result.stage.key != stage.key:
        return None
    return result.metrics.get(name)


def paper_values(bench: Benchmarks, pair: str) -> dict[str, Any]:
    teacher, student = bench.pairs[pair].teacher, bench.pairs[pair].student
    ref = bench.reference
    cell = ref.get("pairs", {}).get(pair, {})
    return {
        "teacher": ref.get("teachers", {}).get(teacher, {}).get("top1"),
        "baseline": ref.get("baselines", {}).get(student, {}).get("top1"),
        "disco": cell.get("disco", {}).get("top1"),
        "random_init": None,
        "gain": cell.get("disco", {}).get("gain_over_baseline"),
    }


def cell_summary(bench: Benchmarks, plan: CellPlan, workspace: Workspace, evaluation: str = "linear") -> dict[str, Any]:
    measured = {role: metric(workspace, plan, role, evaluation) for role in ROLE_LABELS}
    gain = None if measured["disco"] is None or measured["baseline"] is None else measured["disco"] - measured["baseline"]
    return {"measured": measured, "paper": paper_values(bench, plan.pair), "gain": gain}


def direction_verdict(summary: dict[str, Any]) -> str:
    """Tiny profile: is the ordering random < baseline < DisCo (and DisCo <= teacher) as in the paper?"""
    m = summary["measured"]
    if any(m[role] is None for role in ("random_init", "baseline", "disco")):
        return "incomplete"
    checks = [m["baseline"] > m["random_init"], m["disco"] > m["baseline"]]
    if all(checks):
        return "same direction as the paper: DisCo > MoCo-v2 baseline > random init"
    if not checks[1]:
        return "DIFFERENT from the paper: DisCo does not beat the MoCo-v2 baseline here"
    return "DIFFERENT from the paper: the MoCo-v2 baseline does not beat random init"


def print_cell_reports(console: Console, bench: Benchmarks, cells: list[CellPlan], workspace: Workspace, evaluation: str = "linear") -> None:
    for plan in cells:
        summary = cell_summary(bench, plan, workspace, evaluation)
        table = Table(title=f"{plan.pair} · profile {plan.profile} · seed {plan.seed} · {evaluation} top-1 (%)")
        table.add_column("encoder")
        table.add_column("measured", justify="right")
        table.add_column("paper (ImageNet)", justify="right")
        for role, label in ROLE_LABELS.items():
            table.add_row(label, fmt(summary["measured"][role]), fmt(summary["paper"][role]))
        table.add_row("[bold]DisCo - baseline gain[/]", fmt(summary["gain"], signed=True), fmt(summary["paper"]["gain"], signed=True))
        console.print(table)
        if not plan.profile.startswith("paper"):
            console.print("The paper column is ImageNet context only; at this profile the verdict is about direction: " + direction_verdict(summary))
