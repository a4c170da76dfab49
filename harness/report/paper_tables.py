"""The paper's tables (benchmarks.yaml `paper_tables:`) from a built report: a row per student and
method, its baseline first and the teachers' own numbers on top, a column per teacher. Each cell is
the pair's row of this run, with the reference run and the paper beside it, or the command that
would fill it."""

from __future__ import annotations

from disco.evals import EVALUATIONS
from harness.config import Benchmarks, PaperTable
from harness.report.model import EvalReport, PaperTableReport, ProfileReport, TableCell, TableRow
from harness.report.paper import paper_value
from harness.report.roles import BASELINE_ROLE, TEACHER_ROLE, role_label

SMOKE_SUFFIX = "-smoke"


def run_command(report: ProfileReport, pair: str, role: str, defaults: list[str]) -> str:
    profile = report.profile.removesuffix(SMOKE_SUFFIX)
    command = f"disco-bench run --pair {pair} --profile {profile}"
    command += " --smoke" if report.profile.endswith(SMOKE_SUFFIX) else ""
    return command + ("" if role in (BASELINE_ROLE, TEACHER_ROLE, *defaults) else f" --methods {role}")


def evaluation_reports(report: ProfileReport, evaluation: str) -> dict[str, EvalReport]:
    """The pair -> its report of `evaluation`, for the pairs this report holds."""
    return {pair.pair: ev for pair in report.pairs for ev in pair.evals if ev.evaluation == evaluation}


def table_methods(spec: PaperTable, found: list[EvalReport], defaults: list[str]) -> list[str]:
    if spec.methods is not None:
        return list(spec.methods)
    return list(dict.fromkeys([*defaults, *(method for ev in found for method in ev.methods)]))


def paper_table(
    bench: Benchmarks, report: ProfileReport, name: str, spec: PaperTable, evaluation: str
) -> PaperTableReport:
    found = evaluation_reports(report, evaluation)
    metric = next(
        (ev.metric for ev in found.values()), EVALUATIONS[evaluation].metric if evaluation in EVALUATIONS else "top1"
    )
    pairs = {(pair.teacher, pair.student): pair_name for pair_name, pair in bench.pairs.items()}

    def cell(teacher: str, student: str, role: str) -> TableCell:
        pair = pairs.get((teacher, student))
        if pair is None:
            return TableCell(None)
        ev = found.get(pair)
        row = ev.rows.get(role) if ev is not None else None
        paper = row.paper if row is not None else paper_value(bench, pair, role, evaluation, metric, report.base_method)
        unfilled = row is None or row.stat is None
        command = run_command(report, pair, role, bench.default_methods) if unfilled else ""
        return TableCell(pair, row, paper, command)

    methods = table_methods(
        spec, [ev for pair, ev in found.items() if bench.pairs[pair].student in spec.students], bench.default_methods
    )
    # the teachers' own numbers: from any of their pairs in the table
    teacher_cells = [
        next(
            (c for student in spec.students if (c := cell(teacher, student, TEACHER_ROLE)).row is not None),
            next((c for student in spec.students if (c := cell(teacher, student, TEACHER_ROLE)).pair), TableCell(None)),
        )
        for teacher in spec.teachers
    ]
    rows = [TableRow("", TEACHER_ROLE, "teacher (itself)", teacher_cells)]
    for student in spec.students:
        for role in (BASELINE_ROLE, *methods):
            cells = [cell(teacher, student, role) for teacher in spec.teachers]
            label = next((c.row.label for c in cells if c.row is not None and c.row.label), role_label(role))
            rows.append(TableRow(student, role, label, cells))
    return PaperTableReport(name, spec.title, evaluation, metric, list(spec.teachers), rows)


def paper_tables(bench: Benchmarks, report: ProfileReport) -> list[PaperTableReport]:
    """Every table of `paper_tables:` with at least one evaluation this report holds, of the testbed of
    the report's base method (a table naming a `base_method` belongs to its profiles only)."""
    held = {ev.evaluation for pair in report.pairs for ev in pair.evals}
    return [
        paper_table(bench, report, name, spec, evaluation)
        for name, spec in bench.paper_tables.items()
        if held & set(spec.evaluations) and spec.base_method in (None, report.base_method)
        for evaluation in spec.evaluations
    ]
