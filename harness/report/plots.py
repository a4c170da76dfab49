"""Plots: per student, baseline and DisCo bars per teacher; per training stage, its health curves."""

from __future__ import annotations

import io
import math
from typing import Any

from harness.report.model import ProfileReport
from harness.report.roles import role_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_student(report: ProfileReport, student: str, evaluation: str, metric: str) -> bytes | None:
    """Baseline and DisCo bars per teacher (± sd over seeds), the teacher's own accuracy as a marker."""
    entries = [
        (pair.teacher, ev)
        for pair in report.pairs
        if pair.student == student
        for ev in pair.evals
        if ev.evaluation == evaluation
    ]
    if not entries:
        return None
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colors = {"baseline": "#9aa5b1", "student": "#2f6fdf"}
    fig, ax = plt.subplots(figsize=(1.2 * len(entries) + 4.0, 3.6))
    width = 0.38
    for x, (_teacher, ev) in enumerate(entries):
        for offset, role in ((-width / 2, "baseline"), (width / 2, ev.primary)):
            row = ev.rows[role]
            if row.stat is None:
                ax.text(x + offset, 0, row.status, rotation=90, ha="center", va="bottom", fontsize=7)
            else:
                ax.bar(
                    x + offset,
                    row.stat.mean,
                    width,
                    yerr=row.stat.std,
                    capsize=3,
                    color=colors["baseline" if role == "baseline" else "student"],
                )
        teacher_row = ev.rows["teacher"]
        if teacher_row.stat is not None:
            ax.plot([x - width, x + width], [teacher_row.stat.mean] * 2, color="black", linewidth=2)
    ax.set_xticks(range(len(entries)), [f"teacher {teacher}" for teacher, _ in entries])
    ax.set_xlim(-0.7, len(entries) - 0.3)
    ax.set_ylabel(f"{evaluation} {metric} (%)")
    ax.set_title(f"student {student} · profile {report.profile}")
    handles = [
        Patch(color=colors["baseline"], label="baseline"),
        Patch(color=colors["student"], label=", ".join(sorted({role_label(ev.primary) for _, ev in entries}))),
        Line2D([], [], color="black", linewidth=2, label="teacher"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    heights = [
        stat.mean
        for _, ev in entries
        for role in ("baseline", ev.primary, "teacher")
        if (stat := ev.rows[role].stat) is not None
    ]
    ax.set_ylim(0, max(max(heights, default=100.0), 1.0) * 1.1)
    return png_bytes(fig)


def png_bytes(fig) -> bytes:
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
