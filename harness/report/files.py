"""The report's files under <results>/<profile>/: report.{md,csv,html}, plots/<student>-<evaluation>.png
and curves/<stage>.png (each training stage's health by epoch). Only these files are written."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from disco.damaged import remove_leftover_temps
from disco.methods.registry import stage_negatives
from harness.config import Benchmarks
from harness.matrix import CellPlan
from harness.report.collect import planner_for_label, profile_cells
from harness.report.compose import build_report
from harness.report.document import Image, document
from harness.report.model import DEFAULT_TOLERANCE, ProfileReport
from harness.report.plots import plot_curves, plot_student, plot_sweep
from harness.report.render import render_csv, render_html, render_markdown, render_terminal
from harness.results import load_result
from harness.workspace import Workspace, atomic_write_bytes


def write_curves(report: ProfileReport, workspace: Workspace) -> tuple[list[Path], dict[str, list[Image]]]:
    """curves/<stage>.png for every stored training stage of the report, and the images per pair."""
    folder = workspace.results / report.profile
    written: list[Path] = []
    images: dict[str, list[Image]] = {}
    for pair in report.pairs:
        for entry in pair.health:
            result = load_result(workspace.result_path(report.profile, entry.stage)) if entry.metrics else None
            png = plot_curves(entry.stage, result.history, stage_negatives(result.config)) if result else None
            if png is None:
                continue
            relative = f"curves/{entry.stage}.png"
            atomic_write_bytes(folder / relative, png)
            written.append(folder / relative)
            images.setdefault(pair.pair, []).append(Image(relative, f"training curves of {entry.stage}"))
    return written, images


def write_report_files(report: ProfileReport, workspace: Workspace) -> list[Path]:
    folder = workspace.results / report.profile
    for directory in (folder, folder / "plots", folder / "curves"):  # temp files of a killed run's writes
        remove_leftover_temps(directory, None, only_dead_writers=True)
    written, images = [], []
    for student in dict.fromkeys(pair.student for pair in report.pairs):
        for evaluation, metric in report.evaluations():
            png = plot_student(report, student, evaluation, metric)
            if png is not None:
                relative = f"plots/{student}-{evaluation}.png"
                atomic_write_bytes(folder / relative, png)
                written.append(folder / relative)
                images.append(Image(relative, f"student {student}, {evaluation} {metric}"))
    curve_files, curves = write_curves(report, workspace)
    sweep_images: dict[str, list[Image]] = {}
    for pair in report.pairs:
        for sweep in pair.sweeps:
            png = plot_sweep(pair.pair, sweep)
            if png is not None:
                relative = f"plots/{pair.pair}-{sweep.method}-width-{sweep.evaluation}.png"
                atomic_write_bytes(folder / relative, png)
                written.append(folder / relative)
                sweep_images.setdefault(pair.pair, []).append(
                    Image(relative, f"{pair.pair}: {sweep.method} by head width, {sweep.evaluation} {sweep.metric}")
                )
    blocks = document(report, images, curves=curves, sweep_images=sweep_images)
    outputs = {
        "report.md": render_markdown(blocks),
        "report.csv": render_csv(report),
        "report.html": render_html(blocks, f"disco-bench report · {report.profile}"),
    }
    for name, text in outputs.items():
        atomic_write_bytes(folder / name, text.encode())
        written.append(folder / name)
    return written + curve_files


def print_cell_reports(
    console: Console,
    bench: Benchmarks,
    cells: list[CellPlan],
    workspace: Workspace,
    tolerance: float = DEFAULT_TOLERANCE,
    write_files: bool = True,
    reference: Workspace | None = None,
    reference_label: str | None = None,
) -> list[Path]:
    """After a run: the tables of the cells just run, then the profile's report files, regenerated
    from every stored result (the same files `disco-bench report` writes)."""
    if not cells:
        return []
    render_terminal(
        console,
        document(
            build_report(bench, cells, workspace, tolerance, reference, reference_label), overview=False, extras=False
        ),
    )
    if not write_files:
        return []
    planner = planner_for_label(bench, cells[0].profile)
    full = build_report(bench, profile_cells(planner, workspace), workspace, tolerance, reference, reference_label)
    written = write_report_files(full, workspace)
    console.print(
        f"report: {workspace.results / full.profile / 'report.md'} (+ .csv, .html, {sum(p.suffix == '.png' for p in written)} plot(s))"
    )
    return written
