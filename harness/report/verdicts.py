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
OTHER_SCHEDULE = "other schedule"  # the paper's number comes from another training schedule than the run's
ABOVE_CONTROL, NOT_ABOVE_CONTROL, ABOVE_BASELINE, NOT_ABOVE_BASELINE = (
    "> control",
    "<= control",
    "> baseline",
    "<= baseline",
)


def compare(measured: float, reference: float, tolerance: float) -> str:
    delta = measured - reference
    return REPRODUCED if abs(delta) <= tolerance else (BELOW if delta < 0 else ABOVE)


def gain_verdict(gain: Stat | None, higher_is_better: bool = True, method: str = "the student") -> tuple[str, str]:
    """The direction verdict of a paired student - baseline gain, and why; for a lower-is-better
    metric (the evaluation registry says which) the student improves on the baseline with a negative
    gain. `method`: the distillation method's label, as the texts name it."""
    if gain is None:
        return PENDING, f"{method} and the baseline are not both stored yet"
    sign = 1 if higher_is_better else -1
    if gain.n == 1:
        verdict = SAME_DIRECTION if sign * gain.mean > 0 else OPPOSITE_DIRECTION
        return (
            verdict,
            f"one seed: gain {gain.mean:+.1f}; a single seed shows a direction, not a reproduction (run --seeds 3)",
        )
    low, high = gain.ci95 or (gain.mean, gain.mean)  # n >= 2: an interval exists
    interval = f"gain {gain.mean:+.1f}, 95% CI [{low:+.1f}, {high:+.1f}] over {gain.n} seeds"
    better, worse = (low > 0, high < 0) if higher_is_better else (high < 0, low > 0)
    if better:
        return REPRODUCED, f"{interval} excludes 0: {method} beats the baseline, as in the paper"
    if worse:
        return CONTRADICTED, f"{interval} excludes 0 on the other side: the baseline beats {method} here"
    return INCONCLUSIVE, f"{interval} includes 0: the seeds do not separate {method} from the baseline"


def above(lower: Stat | None, upper: Stat | None, yes: str, no: str, higher_is_better: bool = True) -> str:
    """`yes` when `upper` does better than `lower` (a higher mean, or a lower one for a lower-is-better metric)."""
    if lower is None or upper is None:
        return PENDING
    better = upper.mean > lower.mean if higher_is_better else upper.mean < lower.mean
    return yes if better else no


def health_gate(verdict: str, note: str, collapsed: list[str]) -> tuple[str, str]:
    """No cell built on a collapsed encoder is evidence for or against the paper."""
    if not collapsed or verdict in (PENDING, NOT_AVAILABLE):
        return verdict, note
    return (
        UNHEALTHY,
        f"not evidence: {', '.join(collapsed)} ended collapsed (see the training health table); without that the verdict would be `{verdict}` ({note})",
    )


def discrimination(
    teacher: Stat | None, control: Stat | None, noise: float | None, higher_is_better: bool = True
) -> str:
    """Whether an evaluation separates a trained encoder (the teacher) from the random-initialised
    control by more than the seed noise (twice the largest seed standard deviation of the rows)."""
    if teacher is None or control is None:
        return "discrimination: pending (the teacher and the random-init control are not both stored)"
    separation = teacher.mean - control.mean
    gap = separation if higher_is_better else -separation  # how much better the teacher does
    shown = f"{separation:+.1f}" if higher_is_better else f"{separation:+.1f} (lower is better: {gap:+.1f} better)"
    if noise is None:
        state = "separates" if gap > 0 else "does NOT separate"
        return f"discrimination: teacher - random-init = {shown}; it {state} them, seed noise not measured (one seed)"
    if gap > 2 * noise:
        return f"discrimination: teacher - random-init = {shown} > 2 x seed sd {noise:.2f}: this evaluation separates a trained encoder from the control"
    return f"discrimination: teacher - random-init = {shown} <= 2 x seed sd {noise:.2f}: this evaluation does NOT separate a trained encoder from the control here"
