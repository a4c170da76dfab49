"""Verdicts: what the stored numbers say about the paper's claim, and when they say nothing.

paper profile (absolute): |measured - paper| <= tolerance is `reproduced`, else `below` / `above`.
Every other profile (direction): the paper's numbers are ImageNet context; the claim tested is the
sign of the DisCo - baseline gain, paired by seed:
  - one seed: `same direction` or `opposite direction`, never `reproduced`;
  - two or more: `reproduced` when the 95% interval of the gain excludes 0 on the paper's side (a
    positive gain), `contradicted` when it excludes 0 on the other side, else `inconclusive`.
Either way a cell built on a collapsed encoder (teacher, baseline or DisCo; disco/health.py) gets
`unhealthy`: its numbers are not evidence, whatever they are.
"""

from __future__ import annotations

from harness.report.stats import Stat

REPRODUCED, BELOW, ABOVE, PENDING, NOT_AVAILABLE, CONTEXT, CONTROL = (
    "reproduced",
    "below",
    "above",
    "pending",
    "n/a",
    "context",
    "control",
)
SAME_DIRECTION, OPPOSITE_DIRECTION, CONTRADICTED, INCONCLUSIVE, UNHEALTHY = (
    "same direction",
    "opposite direction",
    "contradicted",
    "inconclusive",
    "unhealthy",
)
ABOVE_CONTROL, NOT_ABOVE_CONTROL, ABOVE_BASELINE, NOT_ABOVE_BASELINE = (
    "> control",
    "<= control",
    "> baseline",
    "<= baseline",
)


def compare(measured: float, reference: float, tolerance: float) -> str:
    delta = measured - reference
    return REPRODUCED if abs(delta) <= tolerance else (BELOW if delta < 0 else ABOVE)


def gain_verdict(gain: Stat | None) -> tuple[str, str]:
    """The direction verdict of a paired DisCo - baseline gain, and why."""
    if gain is None:
        return PENDING, "DisCo and the baseline are not both stored yet"
    if gain.n == 1:
        verdict = SAME_DIRECTION if gain.mean > 0 else OPPOSITE_DIRECTION
        return (
            verdict,
            f"one seed: gain {gain.mean:+.1f}; a single seed shows a direction, not a reproduction (run --seeds 3)",
        )
    low, high = gain.ci95 or (gain.mean, gain.mean)  # n >= 2: an interval exists
    interval = f"gain {gain.mean:+.1f}, 95% CI [{low:+.1f}, {high:+.1f}] over {gain.n} seeds"
    if low > 0:
        return REPRODUCED, f"{interval} excludes 0: DisCo beats the MoCo-v2 baseline, as in the paper"
    if high < 0:
        return CONTRADICTED, f"{interval} excludes 0 on the other side: the baseline beats DisCo here"
    return INCONCLUSIVE, f"{interval} includes 0: the seeds do not separate DisCo from the baseline"


def above(lower: Stat | None, upper: Stat | None, yes: str, no: str) -> str:
    if lower is None or upper is None:
        return PENDING
    return yes if upper.mean > lower.mean else no


def health_gate(verdict: str, note: str, collapsed: list[str]) -> tuple[str, str]:
    """No cell built on a collapsed encoder is evidence for or against the paper."""
    if not collapsed or verdict in (PENDING, NOT_AVAILABLE):
        return verdict, note
    return (
        UNHEALTHY,
        f"not evidence: {', '.join(collapsed)} ended collapsed (see the training health table); without that the verdict would be `{verdict}` ({note})",
    )


def discrimination(teacher: Stat | None, control: Stat | None, noise: float | None) -> str:
    """Whether an evaluation separates a trained encoder (the teacher) from the random-initialised
    control by more than the seed noise (twice the largest seed standard deviation of the rows)."""
    if teacher is None or control is None:
        return "discrimination: pending (the teacher and the random-init control are not both stored)"
    separation = teacher.mean - control.mean
    if noise is None:
        state = "separates" if separation > 0 else "does NOT separate"
        return f"discrimination: teacher - random-init = {separation:+.1f}; it {state} them, seed noise not measured (one seed)"
    if separation > 2 * noise:
        return f"discrimination: teacher - random-init = {separation:+.1f} > 2 x seed sd {noise:.2f}: this evaluation separates a trained encoder from the control"
    return f"discrimination: teacher - random-init = {separation:+.1f} <= 2 x seed sd {noise:.2f}: this evaluation does NOT separate a trained encoder from the control here"
