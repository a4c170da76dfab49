"""The paper's numbers from benchmarks.yaml `reference:`; a null stays n/a and is never estimated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from disco.evals import EVALUATIONS
from harness.config import Benchmarks

CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class PaperValue:
    value: float
    source: str | None = None
    confidence: str | None = None
    derived: bool = False  # a gain computed from the paper's DisCo and baseline numbers
    # the training schedule behind the number where it is not the paper's protocol: `epochs` (the
    # student's training epochs), or `schedule` (a text, e.g. "unverified ..."); None: the protocol's
    epochs: int | None = None
    schedule: str | None = None

    def schedule_problem(self, run_epochs: int | None) -> str | None:
        """Why this number cannot be compared with a run of `run_epochs`, or None."""
        if self.schedule is not None:
            return f"the paper's {self.value:.1f} comes from {self.schedule}"
        if self.epochs is not None and run_epochs is not None and self.epochs != run_epochs:
            return f"the paper's {self.value:.1f} comes from {self.epochs} epochs, this run trained {run_epochs}"
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(entry: dict[str, Any], key: str, prefix: str = "") -> PaperValue | None:
    value = entry.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None  # null stays n/a: never guessed
    epochs, schedule = entry.get(f"{prefix}epochs"), entry.get(f"{prefix}schedule")
    return PaperValue(
        float(value),
        entry.get(f"{prefix}source"),
        entry.get(f"{prefix}confidence"),
        epochs=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
        schedule=str(schedule) if schedule is not None else None,
    )


def paper_metric(metric: str) -> str:
    """The paper's top-1 numbers come from the official protocol, i.e. the best epoch."""
    return "top1" if metric == "top1_best" else metric


def testbed_reference(bench: Benchmarks, base: str | None) -> dict[str, Any]:
    """The paper's numbers for a profile whose base method is `base`: its testbed's
    (`reference.testbeds.<base>`: the paper's SwAV testbed) where the paper has one, else the main
    sections (the MoCo-v2 testbed; a base the paper never used, SimCLR, is compared with those)."""
    testbeds = _mapping(bench.reference.get("testbeds"))
    return _mapping(testbeds[base]) if base in testbeds else bench.reference


def paper_entry(bench: Benchmarks, pair: str, role: str, base: str | None = None) -> dict[str, Any]:
    ref, cell = testbed_reference(bench, base), bench.pairs[pair]
    if role == "teacher":
        return _mapping(_mapping(ref.get("teachers")).get(cell.teacher))
    if role == "baseline":
        return _mapping(_mapping(ref.get("baselines")).get(cell.student))
    method = bench.methods.get(role)
    if method is not None and method.kind == "distill":  # reference.pairs.<pair>.<method or its reference name>
        return _mapping(_mapping(_mapping(ref.get("pairs")).get(pair)).get(method.reference or role))
    return {}


def paper_value(
    bench: Benchmarks, pair: str, role: str, evaluation: str, metric: str, base: str | None = None
) -> PaperValue | None:
    """The paper's number for an encoder of a pair on an evaluation, where the evaluation registry says
    it lives (disco.evals.PaperNumbers), in the testbed of the profile's base method `base`; None (n/a)
    for an evaluation the paper reports nothing for."""
    known = EVALUATIONS.get(evaluation)
    where = known.paper if known else None
    if known is None or where is None:
        return None
    if where.section is None:  # Table 1: by metric name
        return _number(paper_entry(bench, pair, role, base), paper_metric(metric))
    if metric != known.metric:  # a per-student section holds the headline number only
        return None
    return _number(student_entry(bench, pair, role, where.section, base), where.key)


def student_entry(bench: Benchmarks, pair: str, role: str, section: str, base: str | None = None) -> dict[str, Any]:
    """`reference.<section>.<student>.<entry>`: `baseline`, `teacher` or `<method>_<teacher>`."""
    cell = bench.pairs[pair]
    entries = _mapping(_mapping(testbed_reference(bench, base).get(section)).get(cell.student))
    if role in ("baseline", "teacher"):
        return _mapping(entries.get(role))
    method = bench.methods.get(role)
    if method is None or method.kind != "distill":
        return {}
    return _mapping(entries.get(f"{method.reference or role}_{cell.teacher}"))


def paper_gain(
    bench: Benchmarks, pair: str, evaluation: str, metric: str, method: str, base: str | None = None
) -> PaperValue | None:
    """A method's gain over the MoCo-v2 baseline: stated (gain_over_baseline, Table 1 top-1) or derived
    within one source."""
    known = EVALUATIONS.get(evaluation)
    if known is None or known.paper is None:
        return None
    stated = (
        _number(paper_entry(bench, pair, method, base), "gain_over_baseline", prefix="gain_")
        if known.paper.section is None and paper_metric(metric) == "top1"
        else None
    )
    if stated:
        return stated
    student, baseline = (
        paper_value(bench, pair, method, evaluation, metric, base),
        paper_value(bench, pair, "baseline", evaluation, metric, base),
    )
    # Only within one source: DisCo retrained its own baselines, so another paper's baseline gives no DisCo gain.
    if student and baseline and student.source == baseline.source:
        confidence = min((student.confidence, baseline.confidence), key=lambda c: CONFIDENCE_RANK.get(c or "", -1))
        return PaperValue(
            student.value - baseline.value,
            student.source,
            confidence,
            derived=True,
            epochs=student.epochs,
            schedule=student.schedule or baseline.schedule,
        )
    return None
