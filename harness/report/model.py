"""The report model, built from stored stage results only (nothing is trained or modified): per cell
and evaluation the measured numbers of this run, of the reference run and the paper's, the paired
DisCo - baseline gain with its seed statistics, the training health of the encoders behind them,
and a verdict (harness/report/verdicts.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from disco.evals import EVALUATIONS
from disco.health import COLLAPSED
from disco.methods.registry import METHODS, method_label
from harness.config import Benchmarks
from harness.matrix import CellPlan, Planner
from harness.report.paper import PaperValue, paper_gain, paper_value
from harness.report.stats import Stat
from harness.report.verdicts import (
    ABOVE_BASELINE,
    ABOVE_CONTROL,
    CONTEXT,
    CONTROL,
    NOT_ABOVE_BASELINE,
    NOT_ABOVE_CONTROL,
    NOT_AVAILABLE,
    PENDING,
    above,
    compare,
    discrimination,
    gain_verdict,
    health_gate,
)
from harness.stages import DONE, STALE, Stage
from harness.workspace import Workspace

CONTROL_ROLE, BASELINE_ROLE, TEACHER_ROLE = "random_init", "baseline", "teacher"
ENCODER_ROLES = (CONTROL_ROLE, BASELINE_ROLE, TEACHER_ROLE)  # besides a row per distillation method
GAIN = "gain"  # a method's gain row is gain_<method>
GAIN_LABEL_SUFFIX = " - baseline gain"


def gain_role(method: str) -> str:
    return f"{GAIN}_{method}"


def is_gain(role: str) -> bool:
    return role.startswith(f"{GAIN}_")


def role_label(role: str, cell: CellPlan | None = None) -> str:
    """A row's name: the control; the baseline and teacher by the method that trained them (the
    cell's stage configs: its profile's base method, or `imported`); each method's student and gain
    by the method's label in the registry."""
    if role == CONTROL_ROLE:
        return "random-init (control)"
    if role in (BASELINE_ROLE, TEACHER_ROLE):
        method = getattr(cell, role).config.get("method") if cell is not None else None
        trained_by = method_label(method) if method in METHODS else "imported" if method else ""
        return f"{trained_by} {role}".strip()
    if is_gain(role):
        return f"{method_label(role.removeprefix(GAIN + '_'))}{GAIN_LABEL_SUFFIX}"
    return f"{method_label(role)} student"


def cell_roles(cells: list[CellPlan]) -> list[str]:
    """Table order: random-init, baseline, each method's student (as the cells list them), teacher."""
    methods = list(dict.fromkeys(method for cell in cells for method in cell.methods))
    return [CONTROL_ROLE, BASELINE_ROLE, *methods, TEACHER_ROLE]


def primary_method(methods: list[str], defaults: list[str]) -> str:
    """The method whose gain gives the cell's verdict: the first default method (benchmarks.yaml
    default_methods) that ran, else the first one."""
    return next((method for method in defaults if method in methods), methods[0] if methods else defaults[0])


ABSOLUTE_PROFILE = "paper"
DEFAULT_TOLERANCE = 1.0

# The headline of an evaluation the registry does not know (a result from another version)
FALLBACK_METRICS = ("top1", "AP", "map", "ap", "accuracy")
BOOKKEEPING_METRICS = {"num_train", "num_test", "epochs"}


# ---------------------------------------------------------------- stored results


@dataclass(frozen=True)
class Stored:
    status: str  # "done" | "stale" (stored under another key: config or code changed) | "pending" | "n/a"
    metrics: dict[str, Any] = field(default_factory=dict)


def stored(workspace: Workspace | None, stage: Stage) -> Stored:
    """A stage's metrics where its result has its key: a damaged checkpoint does not change the
    numbers measured on it (committed results come without their checkpoints)."""
    found = stage.stored(workspace) if workspace else None
    if found is None or found.result is None:
        return Stored(PENDING)
    if found.state == STALE:
        return Stored(STALE)
    return Stored(DONE, found.result.metrics)


def headline_metric(evaluation: str, metrics: list[dict[str, Any]]) -> str:
    """The registry's headline metric of `evaluation` (disco/evals/__init__.py), the first of its
    names these results hold; for an evaluation the registry does not know, a common one."""
    preferred = EVALUATIONS[evaluation].headline if evaluation in EVALUATIONS else ()
    candidates = [*preferred, *FALLBACK_METRICS]
    for name in candidates:
        if any(is_value(m.get(name)) for m in metrics):
            return name
    for m in metrics:
        for name, value in m.items():
            if is_value(value) and name not in BOOKKEEPING_METRICS:
                return name
    return candidates[0]


def beside_metric(evaluation: str, metric: str, metrics: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(metric, column header) the registry shows beside the headline, when it is the registry's first
    choice and these results hold the beside metric."""
    known = EVALUATIONS.get(evaluation)
    beside = known.beside if known and metric == known.metric else None
    return beside if beside and any(is_value(m.get(beside[0])) for m in metrics) else None


def is_value(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- the model


@dataclass
class Row:
    role: str  # "random_init", "baseline", a method, "teacher", or a gain row (gain_role)
    status: str  # "done", "2/3 seeds", "pending", "stale", "n/a" (the evaluation does not run on this encoder)
    stat: Stat | None  # this run, over its seeds
    paper: PaperValue | None
    verdict: str = NOT_AVAILABLE
    beside: Stat | None = None  # the EvalReport's beside metric (e.g. the last epoch)
    reference: Stat | None = None  # the reference run's value, where its stage has the same key
    label: str = ""  # the row's name (role_label)
    # False where the profile's data is not the paper's (tiny): the paper's number is context only
    comparable: bool = True

    @property
    def delta(self) -> float | None:
        if self.stat is None or self.paper is None or not self.comparable:
            return None
        return self.stat.mean - self.paper.value


@dataclass
class EvalReport:
    evaluation: str
    metric: str
    rows: dict[str, Row]  # cell_roles, then a gain row per method, in table order
    verdict: str
    note: str
    beside: tuple[str, str] | None = None  # (metric, column header) shown beside the headline
    discrimination: str = ""
    primary: str = ""  # the method whose gain gives the verdict

    @property
    def methods(self) -> list[str]:
        return [role for role in self.rows if role not in ENCODER_ROLES and not is_gain(role)]


@dataclass(frozen=True)
class StageHealth:
    """The final training health of one encoder stage (disco/health.py), from its stored result."""

    role: str
    stage: str
    status: str  # healthy | weak | collapsed | pending | stale | n/a (not trained: imported)
    metrics: dict[str, Any] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    label: str = ""  # the encoder's name (role_label)


@dataclass
class PairReport:
    pair: str
    teacher: str
    student: str
    seeds: list[int]
    evals: list[EvalReport]
    deviations: list[str] = field(default_factory=list)  # chosen departures from the official computation
    health: list[StageHealth] = field(default_factory=list)


@dataclass
class ProfileReport:
    profile: str  # the results label, e.g. "tiny" or "tiny-smoke"
    absolute: bool
    tolerance: float
    pairs: list[PairReport]
    reference: str | None = None  # where the reference run comes from (commit, hardware), if one was read
    excluded: dict[str, str] = field(default_factory=dict)  # evaluation -> why it is not in this profile's default

    def evaluations(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for pair in self.pairs:
            for ev in pair.evals:
                seen.setdefault(ev.evaluation, ev.metric)
        return list(seen.items())


def seed_status(states: list[str]) -> str:
    if states and all(state == NOT_AVAILABLE for state in states):
        return NOT_AVAILABLE
    done = states.count("done")
    if done == len(states):
        return "done"
    if done:
        return f"{done}/{len(states)} seeds"
    return "stale" if "stale" in states else PENDING


def metric_stat(stored_runs: list[Stored], metric: str | None) -> Stat | None:
    values = tuple(
        float(run.metrics[metric])
        for run in stored_runs
        if metric and run.status == "done" and is_value(run.metrics.get(metric))
    )
    return Stat(values) if values else None


def gain_stat(disco: list[Stored], baseline: list[Stored], metric: str) -> Stat | None:
    """Paired by seed: DisCo and the baseline of the same seed."""
    values = tuple(
        float(d.metrics[metric]) - float(b.metrics[metric])
        for d, b in zip(disco, baseline)
        if d.status == b.status == "done" and is_value(d.metrics.get(metric)) and is_value(b.metrics.get(metric))
    )
    return Stat(values) if values else None


def gain_status(disco: list[Stored], baseline: list[Stored]) -> str:
    both = [
        "done" if d.status == b.status == "done" else ("stale" if "stale" in (d.status, b.status) else PENDING)
        for d, b in zip(disco, baseline)
    ]
    return seed_status(both)


@dataclass(frozen=True)
class Runs:
    """An evaluation's stored results per role (one per seed), in this run and in the reference run."""

    current: dict[str, list[Stored]]
    reference: dict[str, list[Stored]]


def collect(cells: list[CellPlan], evaluation: str, workspace: Workspace, reference: Workspace | None) -> Runs:
    # an evaluation that does not run on a role's encoder (evaluations.<name>.archs) has no stage: n/a
    roles = cell_roles(cells)

    def runs(where: Workspace | None) -> dict[str, list[Stored]]:
        return {
            role: [
                stored(where, cell.evals[(role, evaluation)])
                if (role, evaluation) in cell.evals
                else Stored(NOT_AVAILABLE)
                for cell in cells
            ]
            for role in roles
        }

    return Runs(runs(workspace), runs(reference))


def evaluation_report(
    bench: Benchmarks,
    pair: str,
    cells: list[CellPlan],
    evaluation: str,
    workspace: Workspace,
    reference: Workspace | None,
    absolute: bool,
    tolerance: float,
    collapsed: list[str],
) -> EvalReport:
    found = collect(cells, evaluation, workspace, reference)
    current = [run.metrics for role_runs in found.current.values() for run in role_runs if run.metrics]
    # this run's metrics name the headline; the reference run's only when this run has none yet
    metrics = current or [run.metrics for role_runs in found.reference.values() for run in role_runs]
    metric = headline_metric(evaluation, metrics)
    beside = beside_metric(evaluation, metric, metrics)
    rows = {
        role: Row(
            role,
            seed_status([run.status for run in found.current[role]]),
            metric_stat(found.current[role], metric),
            paper_value(bench, pair, role, evaluation, metric),
            beside=metric_stat(found.current[role], beside and beside[0]),
            reference=metric_stat(found.reference[role], metric),
            label=role_label(role, cells[0]),
        )
        for role in found.current
    }
    methods = cell_roles(cells)[2:-1]
    for method in methods:
        rows[gain_role(method)] = Row(
            gain_role(method),
            gain_status(found.current[method], found.current["baseline"]),
            gain_stat(found.current[method], found.current["baseline"], metric),
            paper_gain(bench, pair, evaluation, metric, method),
            reference=gain_stat(found.reference[method], found.reference["baseline"], metric),
            label=role_label(gain_role(method)),
        )
    primary = primary_method(methods, bench.default_methods)
    higher = EVALUATIONS[evaluation].higher_is_better if evaluation in EVALUATIONS else True
    verdict, note = (
        absolute_verdicts(rows, tolerance, primary) if absolute else direction_verdicts(rows, primary, higher)
    )
    verdict, note = health_gate(verdict, note, collapsed)
    for row in rows.values():
        row.comparable = absolute
    for row in rows.values():
        if row.status == NOT_AVAILABLE:
            row.verdict = NOT_AVAILABLE
    return EvalReport(
        evaluation,
        metric,
        rows,
        verdict,
        note,
        beside,
        discrimination(rows["teacher"].stat, rows["random_init"].stat, seed_noise(rows), higher)
        + not_above_control(rows, higher),
        primary,
    )


def not_above_control(rows: dict[str, Row], higher_is_better: bool = True) -> str:
    """The trained encoders (baseline, each student, teacher) whose mean does not beat the
    random-initialised control's: a probe's number only says self-supervision helped if it does."""
    control = rows[CONTROL_ROLE].stat
    if control is None:
        return ""
    sign = 1 if higher_is_better else -1
    behind = [
        f"{row.label or role_label(role)} {row.stat.mean:.1f}"
        for role, row in rows.items()
        if role != CONTROL_ROLE
        and not is_gain(role)
        and row.stat is not None
        and sign * (row.stat.mean - control.mean) <= 0
    ]
    if not behind:
        return "; every trained encoder beats the random-init control"
    return f"; NOT above the random-init control ({control.mean:.1f}): {', '.join(behind)}"


def seed_noise(rows: dict[str, Row]) -> float | None:
    """The largest seed standard deviation among the rows measured over several seeds."""
    spreads = [
        row.stat.std
        for row in rows.values()
        if not is_gain(row.role) and row.stat is not None and row.stat.std is not None
    ]
    return max(spreads) if spreads else None


def absolute_verdicts(rows: dict[str, Row], tolerance: float, primary: str) -> tuple[str, str]:
    """Every row against the paper's number; the cell's verdict is the primary method's."""
    for row in rows.values():
        if row.stat is None:
            row.verdict = PENDING
        elif row.paper is not None:
            row.verdict = compare(row.stat.mean, row.paper.value, tolerance)
    student, gain, name = rows[primary], rows[gain_role(primary)], method_label(primary)
    if student.stat is None:
        return PENDING, f"the {name} student's evaluation has no stored result yet"
    if student.paper is not None:
        return (
            student.verdict,
            f"{name} {student.stat.mean:.1f} vs the paper's {student.paper.value:.1f} (tolerance ±{tolerance:g})",
        )
    if gain.stat is not None and gain.paper is not None:
        return (
            gain.verdict,
            f"the paper gives no {name} number; gain {gain.stat.mean:+.1f} vs the paper's {gain.paper.value:+.1f} (tolerance ±{tolerance:g})",
        )
    return NOT_AVAILABLE, f"the paper gives neither a {name} number nor a gain for this cell"


def direction_verdicts(rows: dict[str, Row], primary: str, higher_is_better: bool = True) -> tuple[str, str]:
    """The paper's ordering row by row (random-init < baseline < each method's student); the cell's
    verdict is the primary method's gain."""
    rows["random_init"].verdict = CONTROL if rows["random_init"].stat else PENDING
    rows["teacher"].verdict = CONTEXT if rows["teacher"].stat else PENDING
    baseline = rows["baseline"].stat
    rows["baseline"].verdict = above(
        rows["random_init"].stat, baseline, ABOVE_CONTROL, NOT_ABOVE_CONTROL, higher_is_better
    )
    notes = {}
    for role, row in rows.items():
        if is_gain(role):
            method = method_label(role.removeprefix(GAIN + "_"))
            row.verdict, notes[role] = gain_verdict(row.stat, higher_is_better, method)
        elif role not in ENCODER_ROLES:
            row.verdict = above(baseline, row.stat, ABOVE_BASELINE, NOT_ABOVE_BASELINE, higher_is_better)
    return rows[gain_role(primary)].verdict, notes[gain_role(primary)]


# ---------------------------------------------------------------- training health


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
            entries.setdefault(stage.key, stage_health(role, stage, workspace, cell))
    return list(entries.values())


# ---------------------------------------------------------------- building a report


def build_report(
    bench: Benchmarks,
    cells: list[CellPlan],
    workspace: Workspace,
    tolerance: float = DEFAULT_TOLERANCE,
    reference: Workspace | None = None,
    reference_label: str | None = None,
) -> ProfileReport:
    """One entry per pair (its cells are its seeds), evaluations in the order the cells list them."""
    by_pair: dict[str, list[CellPlan]] = {}
    for cell in cells:
        by_pair.setdefault(cell.pair, []).append(cell)
    label = cells[0].profile if cells else ABSOLUTE_PROFILE
    absolute = label == ABSOLUTE_PROFILE
    pairs = []
    for pair, pair_cells in by_pair.items():
        pair_cells.sort(key=lambda cell: cell.seed)
        health = pair_health(pair_cells, workspace)
        collapsed = [entry.stage for entry in health if entry.status == COLLAPSED]
        evaluations = list(dict.fromkeys(evaluation for cell in pair_cells for _, evaluation in cell.evals))
        reports = [
            evaluation_report(bench, pair, pair_cells, ev, workspace, reference, absolute, tolerance, collapsed)
            for ev in evaluations
        ]
        spec = bench.pairs[pair]
        pairs.append(
            PairReport(
                pair,
                spec.teacher,
                spec.student,
                [cell.seed for cell in pair_cells],
                reports,
                deviations(pair_cells),
                health,
            )
        )
    profile = planner_for_label(bench, label).profile if cells else None
    excluded = dict(profile.excluded_evals) if profile is not None else {}
    return ProfileReport(
        label, absolute, tolerance, pairs, reference_label if reference is not None else None, excluded
    )


def deviations(cells: list[CellPlan]) -> list[str]:
    """Chosen departures from the official computation that the stage configs record."""
    bf16 = list(
        dict.fromkeys(
            stage.name
            for cell in cells
            for stage in (cell.teacher, cell.baseline, *cell.methods.values())
            if stage.config.get("precision") == "bf16"
        )
    )
    if not bf16:
        return []
    return [
        f"bf16 autocast in training (precision: bf16; the official code is fp32, embeddings differ by ~1e-2) for {', '.join(bf16)}"
    ]


def stored_seeds(workspace: Workspace, stage: Stage) -> set[int]:
    """Seeds with a stored result under this stage's name (stages are named ...-s<seed>)."""
    stem = stage.name.removesuffix(f"-s{stage.config['seed']}")
    folder = workspace.result_path(stage.profile, stage.name).parent
    seeds = set()
    for path in folder.glob(f"{stem}-s*.json"):
        suffix = path.stem[len(stem) + 2 :]
        if suffix.isdigit():
            seeds.add(int(suffix))
    return seeds


@dataclass(frozen=True)
class Evidence:
    """What has stored results for a pair's method students (the stages unique to the pair)."""

    seeds: set[int] = field(default_factory=set)
    evaluations: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def merged(self, other: Evidence) -> Evidence:
        return Evidence(
            self.seeds | other.seeds,
            list(dict.fromkeys([*self.evaluations, *other.evaluations])),
            list(dict.fromkeys([*self.methods, *other.methods])),
        )


def pair_evidence(planner: Planner, pair: str, workspace: Workspace) -> Evidence:
    spec = planner.bench.pairs[pair]
    seeds: set[int] = set()
    evaluations: list[str] = []
    methods: list[str] = []
    for method in planner.composable_methods():
        student = planner.distill(method, spec.teacher, spec.student, 0)
        found = stored_seeds(workspace, student)
        for evaluation in planner.runnable_evaluations():
            evaluated = stored_seeds(workspace, planner.evaluation(evaluation, student, 0))
            if evaluated:
                found |= evaluated
                evaluations.append(evaluation)
        if found:
            seeds |= found
            methods.append(method)
    return Evidence(seeds, list(dict.fromkeys(evaluations)), methods)


def profile_cells(
    planner: Planner,
    workspace: Workspace,
    pairs: list[str] | None = None,
    all_pairs: bool = False,
    also: Workspace | None = None,
    methods: list[str] | None = None,
) -> list[CellPlan]:
    """The cells a profile report covers: the named pairs, or every pair, or the default pairs plus
    every pair with stored results (in `workspace` or `also`, the reference run); each at every
    stored seed, with its evaluations and methods (`methods`, or the default ones) plus any stored one."""
    bench = planner.bench
    evidence = {
        pair: pair_evidence(planner, pair, workspace).merged(pair_evidence(planner, pair, also) if also else Evidence())
        for pair in bench.pairs
    }
    if pairs:
        chosen = list(dict.fromkeys(pairs))
    elif all_pairs:
        chosen = list(bench.pairs)
    else:
        chosen = [p for p in bench.pairs if p in bench.default_pairs or evidence[p].seeds]
    cells = []
    for pair in chosen:
        planner.cell(pair)  # a misspelled --pair: one error line with "did you mean"
        found = evidence[pair]
        evaluations = list(dict.fromkeys([*(bench.pairs[pair].evals or planner.profile.evals), *found.evaluations]))
        chosen_methods = list(dict.fromkeys([*planner.methods(methods), *found.methods]))
        cells += [planner.cell(pair, seed, evaluations, chosen_methods) for seed in sorted(found.seeds | {0})]
    return cells


def planner_for_label(bench: Benchmarks, label: str) -> Planner:
    smoke = label.endswith("-smoke") and label.removesuffix("-smoke") in bench.profiles
    return Planner(bench, label.removesuffix("-smoke") if smoke else label, smoke=smoke)
