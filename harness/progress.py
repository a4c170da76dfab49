"""Progress a person can follow: rich bars on a terminal; otherwise (CI, Slurm and Docker logs, `tee`)
one plain line per training epoch with its loss terms, health, elapsed time and ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import Progress, TaskID

Reporter = Callable[..., None]  # (phase, done, total[, info])
LOSS_TERMS = ("loss", "ce", "mse", "mse_v1", "mse_v2", "rkd_distance", "rkd_angle")  # the methods' loss terms


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def epoch_summary(info: dict[str, Any]) -> str:
    """The loss terms and health entries of one epoch's history entry, compactly."""
    parts = [f"{name} {info[name]:.3f}" for name in LOSS_TERMS if isinstance(info.get(name), (int, float))]
    if "ce_chance_ratio" in info:
        parts.append(f"ce/ln(K+1) {info['ce_chance_ratio']:.2f}")
    if "emb_cosine" in info:
        parts.append(f"cos {info['emb_cosine']:.2f} erank {info['emb_erank']:.1f}")
    if "knn_top1" in info:
        parts.append(f"kNN {info['knn_top1']:.1f}")
    return " · ".join(parts)


# what a run says about a stage that another run (another terminal, another Slurm array) holds
LOCK_NEWS = {
    "waiting": "waiting: another run holds this stage's lock (it trains it; this run then reuses its result)",
    "reused": "reused the result the other run stored: not trained again",
}


class EpochLines:
    """A reporter printing one line per training epoch: `[stage] epoch 3/12 · loss ... | 0:42 elapsed, ETA 2:48`."""

    def __init__(self, stage: str, echo: Callable[[str], None]):
        self.stage = stage
        self.echo = echo
        self.started = time.monotonic()

    def __call__(self, phase: str, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        if phase in LOCK_NEWS:
            self.echo(f"[{self.stage}] {LOCK_NEWS[phase]}")
        if phase != "epoch" or info is None:  # evaluation epochs and steps: too many for a log
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (total - done) if done else 0.0
        self.echo(
            f"[{self.stage}] epoch {done}/{total} · {epoch_summary(info)} | {clock(elapsed)} elapsed, ETA {clock(eta)}"
        )


def bar_reporter(progress: Progress, task: TaskID) -> Reporter:
    """A reporter driving one rich task: epochs as the bar, the last epoch's summary beside it."""

    def report(phase: str, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        if phase == "epoch":
            detail = f"epoch {done}/{total}" + (f" · {epoch_summary(info)}" if info else "")
            progress.update(task, completed=done, total=total, detail=detail)
        elif phase == "step":
            progress.update(task, detail=f"step {done}/{total}")
        elif phase in LOCK_NEWS:
            progress.update(task, detail=LOCK_NEWS[phase])

    return report
