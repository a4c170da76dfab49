"""Plots: per student and evaluation, a dot and interval per encoder; per training stage, its health curves."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from harness.report.model import ProfileReport, SweepReport
from harness.report.roles import is_gain, role_label

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D


def _line2d() -> type[Line2D]:
    from matplotlib.lines import Line2D

    return Line2D


def _pyplot() -> ModuleType:  # matplotlib.pyplot
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_student(report: ProfileReport, student: str, evaluation: str, metric: str) -> bytes | None:
    """Dot and interval per encoder of the student's pairs (the control, the baseline, each method's
    student, the teacher): this run's mean with its 95% interval over seeds (one seed: a dot), the reference run as a hollow diamond, the paper's number as a red cross."""
    entries = [
        (pair.teacher, ev)
        for pair in report.pairs
        if pair.student == student
        for ev in pair.evals
        if ev.evaluation == evaluation
    ]
    if not entries:
        return None
    plt, Line2D = _pyplot(), _line2d()
    labels: list[tuple[float, str]] = []
    positions = 0.0
    lines = sum(len([r for r in ev.rows if not is_gain(r)]) for _, ev in entries)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * lines + 1.4))
    for teacher, ev in entries:
        for role, row in ev.rows.items():
            if is_gain(role):
                continue
            y = -positions
            labels.append((y, f"{row.label or role_label(role)} · teacher {teacher}"))
            positions += 1
            if row.stat is not None:
                interval = row.stat.ci95
                if interval is not None:
                    ax.plot(interval, [y, y], color="#2f6fdf", linewidth=2)
                ax.plot(row.stat.mean, y, "o", color="#2f6fdf", markersize=5)
            else:
                ax.text(0, y, row.status, va="center", fontsize=7, color="#777")
            if row.reference is not None:
                ax.plot(row.reference.mean, y, "D", markerfacecolor="none", color="#333", markersize=6)
            if row.paper is not None:
                ax.plot(row.paper.value, y, "x", color="#d62728", markersize=7, markeredgewidth=2)
        positions += 0.5  # a gap between teachers
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels], fontsize=7)
    ax.set_xlabel(f"{evaluation} {metric} (%)")
    ax.grid(axis="x", color="#ddd", linewidth=0.6)
    ax.set_title(f"student {student} · profile {report.profile}", fontsize=9)
    paper_label = "paper" if report.absolute else "paper (ImageNet: context only)"
    handles = [
        Line2D([], [], marker="o", color="#2f6fdf", label="this run: mean, 95% interval"),
        Line2D([], [], marker="D", markerfacecolor="none", color="#333", linestyle="none", label="reference run"),
        Line2D([], [], marker="x", color="#d62728", linestyle="none", markeredgewidth=2, label=paper_label),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return png_bytes(fig)


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buffer.getvalue()


def plot_curves(stage: str, history: list[dict[str, Any]], negatives: int | None) -> bytes | None:
    """One training stage's curves by epoch: loss terms (with ln(K+1)), InfoNCE / ln(K+1), the mean
    pairwise cosines and effective ranks of the held-out batch, and the kNN monitor."""
    if not history:
        return None
    plt = _pyplot()
    epochs = [entry.get("epoch", index + 1) for index, entry in enumerate(history)]

    def series(name: str) -> tuple[list[int], list[float]]:
        points = [
            (epoch, entry[name]) for epoch, entry in zip(epochs, history) if isinstance(entry.get(name), (int, float))
        ]
        return [p[0] for p in points], [p[1] for p in points]

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for name in ("loss", "ce", "mse_v1", "mse_v2"):
        axes[0].plot(*series(name), marker="o", markersize=3, label=name)
    if negatives:  # the contrastive term's chance level, K from the method (registry `negatives`)
        axes[0].axhline(math.log(negatives + 1), color="red", linestyle="--", linewidth=1, label="ln(K+1)")
    axes[0].set_title("loss terms")
    axes[1].plot(*series("ce_chance_ratio"), marker="o", markersize=3, color="black")
    for level, color in ((1.0, "red"), (0.85, "orange")):
        axes[1].axhline(level, color=color, linestyle="--", linewidth=1)
    axes[1].set_title("contrastive loss / ln(K+1)")
    for name in ("emb_cosine", "feat_cosine"):
        axes[2].plot(*series(name), marker="o", markersize=3, label=name)
    for level, color in ((0.9, "red"), (0.5, "orange")):
        axes[2].axhline(level, color=color, linestyle="--", linewidth=1)
    axes[2].set_ylim(-0.1, 1.05)
    axes[2].set_title("mean pairwise cosine")
    for name in ("emb_erank", "feat_erank"):
        axes[3].plot(*series(name), marker="o", markersize=3, label=name)
    knn = series("knn_top1")
    if knn[0]:
        twin = axes[3].twinx()
        twin.plot(*knn, marker="s", markersize=3, color="green", label="kNN top-1 (%)")
        twin.set_ylabel("kNN top-1 (%)", color="green")
    axes[3].set_title("effective rank · kNN monitor")
    for ax in axes:
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle(stage, fontsize=9)
    return png_bytes(fig)


def plot_sweep(pair: str, sweep: SweepReport) -> bytes | None:
    """An evaluation against the student head's hidden width (log2 axis): this run's mean with its
    95% interval per width, the method's default width marked."""
    measured = [point for point in sweep.points if point.stat is not None]
    if len(measured) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    widths = [point.width for point in measured]
    means = [point.stat.mean for point in measured if point.stat is not None]
    ax.plot(widths, means, "o-", color="#2f6fdf", markersize=5)
    for point in measured:
        if point.stat is not None and point.stat.ci95 is not None:
            ax.plot([point.width, point.width], point.stat.ci95, color="#2f6fdf", linewidth=2)
        if "@" not in point.role:
            ax.plot(
                point.width,
                point.stat.mean if point.stat else 0,
                "s",
                markerfacecolor="none",
                color="#333",
                markersize=9,
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(width) for width in widths], fontsize=7)
    ax.set_xlabel("student head hidden width (square: the default row)")
    ax.set_ylabel(f"{sweep.evaluation} {sweep.metric} (%)")
    ax.grid(color="#ddd", linewidth=0.6)
    ax.set_title(f"{pair} · {sweep.method} by head width", fontsize=9)
    return png_bytes(fig)
