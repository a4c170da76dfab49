"""Composing the report: rows of this run, the reference run and the paper per role and evaluation,
the gains over the baseline, and the verdicts (harness/report/verdicts.py) with the health gate."""

from __future__ import annotations

from disco.archs import HEAD_WIDTHS
from disco.evals import EVALUATIONS
from disco.health import COLLAPSED
from disco.methods.registry import method_label
from harness.config import Benchmarks
from harness.matrix import CellPlan, split_role
from harness.report.collect import (
    beside_metric,
    collect,
    gain_stat,
    gain_status,
    headline_metric,
    metric_stat,
    planner_for_label,
    seed_status,
)
from harness.report.health import pair_health
from harness.report.model import (
    ABSOLUTE_PROFILE,
    DEFAULT_TOLERANCE,
    EvalReport,
    PairReport,
    ProfileReport,
    Row,
    SweepPoint,
    SweepReport,
)
from harness.report.paper import paper_gain, paper_value
from harness.report.paper_tables import paper_tables
from harness.report.roles import (
    CONTROL_ROLE,
    ENCODER_ROLES,
    GAIN,
    cell_roles,
    gain_role,
    is_gain,
    method_role_label,
    primary_method,
    role_label,
)
from harness.report.verdicts import (
    ABOVE_BASELINE,
    ABOVE_CONTROL,
    CONTEXT,
    CONTROL,
    NOT_ABOVE_BASELINE,
    NOT_ABOVE_CONTROL,
    NOT_AVAILABLE,
    OTHER_SCHEDULE,
    PENDING,
    above,
    compare,
    discrimination,
    gain_verdict,
    health_gate,
)
from harness.stages import Stage
from harness.workspace import Workspace


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
    base: str | None = None,
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
            paper_value(bench, pair, role, evaluation, metric, base),
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
            paper_gain(bench, pair, evaluation, metric, method, base),
            reference=gain_stat(found.reference[method], found.reference["baseline"], metric),
            label=role_label(gain_role(method)),
        )
    primary = primary_method(methods, bench.default_methods)
    higher = EVALUATIONS[evaluation].higher_is_better if evaluation in EVALUATIONS else True
    verdict, note = (
        absolute_verdicts(rows, tolerance, primary, role_epochs(cells[0]))
        if absolute
        else direction_verdicts(rows, primary, higher)
    )
    verdict, note = health_gate(verdict, note, collapsed)
    for row in rows.values():
        row.comparable = absolute and row.verdict != OTHER_SCHEDULE
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


def role_epochs(cell: CellPlan) -> dict[str, int | None]:
    """Each encoder role's training epochs (None: not trained here), for the paper numbers' schedules."""
    epochs = {}
    for role, stage in cell.roles().items():
        value = stage.config.get("recipe", {}).get("epochs")
        epochs[role] = value if isinstance(value, int) else None
    return epochs


def absolute_verdicts(
    rows: dict[str, Row], tolerance: float, primary: str, epochs: dict[str, int | None]
) -> tuple[str, str]:
    """Every row against the paper's number where it comes from the run's schedule (a 200-epoch
    number against a 200-epoch run only); the cell's verdict is the primary method's."""
    schedule: dict[str, str | None] = {}
    for role, row in rows.items():
        trained = epochs.get(role.removeprefix(GAIN + "_") if is_gain(role) else role)
        schedule[role] = row.paper.schedule_problem(trained) if row.paper is not None else None
        if row.stat is None:
            row.verdict = PENDING
        elif schedule[role]:
            row.verdict = OTHER_SCHEDULE
        elif row.paper is not None:
            row.verdict = compare(row.stat.mean, row.paper.value, tolerance)
    student, gain, name = rows[primary], rows[gain_role(primary)], method_role_label(primary)
    if student.stat is None:
        return PENDING, f"the {name} student's evaluation has no stored result yet"
    if schedule[primary]:
        return OTHER_SCHEDULE, f"{name}: {schedule[primary]}; compared only with a run of that schedule"
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
            method = method_role_label(role.removeprefix(GAIN + "_"))
            row.verdict, notes[role] = gain_verdict(row.stat, higher_is_better, method)
        elif role not in ENCODER_ROLES:
            row.verdict = above(baseline, row.stat, ABOVE_BASELINE, NOT_ABOVE_BASELINE, higher_is_better)
    return rows[gain_role(primary)].verdict, notes[gain_role(primary)]


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
    profile = planner_for_label(bench, label).profile if cells else None
    base = profile.base_method if profile is not None else None  # the testbed whose paper numbers apply
    pairs = []
    for pair, pair_cells in by_pair.items():
        pair_cells.sort(key=lambda cell: cell.seed)
        health = pair_health(pair_cells, workspace)
        collapsed = [entry.stage for entry in health if entry.status == COLLAPSED]
        evaluations = list(dict.fromkeys(evaluation for cell in pair_cells for _, evaluation in cell.evals))
        reports = [
            evaluation_report(bench, pair, pair_cells, ev, workspace, reference, absolute, tolerance, collapsed, base)
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
                sweeps(pair_cells[0], reports),
            )
        )
    excluded = dict(profile.excluded_evals) if profile is not None else {}
    report = ProfileReport(
        label, absolute, tolerance, pairs, reference_label if reference is not None else None, excluded
    )
    report.base_method = base
    report.tables = paper_tables(bench, report)
    report.teachers = teacher_sources(bench, cells)
    return report


def teacher_sources(bench: Benchmarks, cells: list[CellPlan]) -> dict[str, str]:
    """Each teacher of the report: imported from its released file, or trained here (how)."""
    sources: dict[str, str] = {}
    for cell in cells:
        stage = cell.teacher
        if stage.kind == "import":
            source = f"imported ({stage.config['checkpoint']['file']})"
        else:
            epochs = stage.config.get("recipe", {}).get("epochs")
            source = f"trained here ({method_label(stage.config['method'])}, {epochs} epochs)"
        sources.setdefault(bench.pairs[cell.pair].teacher, source)
    return sources


def sweeps(cell: CellPlan, reports: list[EvalReport]) -> list[SweepReport]:
    """Per evaluation, each swept method's students by head width: its default row at the default
    head's width beside each `<method>@h<width>` row (none without a swept role in the cell)."""
    swept = {split_role(role)[0] for role in cell.methods if split_role(role)[1] is not None}
    found = []
    for method in (m for m in cell.methods if m in swept):
        roles = [role for role in cell.methods if split_role(role)[0] == method]
        for ev in reports:
            points = [
                SweepPoint(width, role, ev.rows[role].stat)
                for role in roles
                if role in ev.rows and (width := stage_head_width(cell.methods[role])) is not None
            ]
            found.append(SweepReport(method, ev.evaluation, ev.metric, sorted(points, key=lambda p: p.width)))
    return found


def stage_head_width(stage: Stage) -> int | None:
    """A student stage's head width: the one it records (head_hidden), else its head's default."""
    width = stage.config.get("head_hidden")
    return width if isinstance(width, int) else HEAD_WIDTHS.get(str(stage.config.get("head")))


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
    frozen = list(
        dict.fromkeys(
            stage.name
            for cell in cells
            for stage in cell.methods.values()
            if stage.config.get("teacher_precision") == "bf16"
        )
    )
    found = []
    if bf16:
        found.append(
            f"bf16 autocast in training (precision: bf16; the official code is fp32, embeddings differ by ~1e-2) for {', '.join(bf16)}"
        )
    if frozen:
        found.append(f"the frozen teacher's forward in bf16 autocast (teacher_precision: bf16) for {', '.join(frozen)}")
    return found
