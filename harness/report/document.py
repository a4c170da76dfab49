"""The report as a renderer-neutral document (headings, paragraphs, tables, images), rendered by
harness/report/render.py to the terminal, markdown, HTML and CSV."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from disco.methods.registry import method_label
from harness.report.model import EvalReport, PairReport, ProfileReport, Row, StageHealth, SweepReport, TableCell
from harness.report.paper import PaperValue
from harness.report.roles import gain_role, is_gain, method_role_label, role_label
from harness.report.stats import Stat
from harness.report.verdicts import NOT_AVAILABLE


def fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return NOT_AVAILABLE
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_measured(row: Row) -> str:
    return fmt_stat(row.stat, signed=is_gain(row.role), fallback=row.status)  # pending / stale


def fmt_ci(row: Row) -> str:
    interval = row.stat.ci95 if row.stat else None
    signed = is_gain(row.role)
    return "" if interval is None else f"[{fmt(interval[0], signed=signed)}, {fmt(interval[1], signed=signed)}]"


def fmt_paper(row: Row) -> str:
    if row.paper is None:
        return NOT_AVAILABLE
    return fmt(row.paper.value, signed=is_gain(row.role)) + ("*" if row.paper.derived else "")


def fmt_source(paper: PaperValue | None) -> str:
    if paper is None:
        return ""
    return f"{paper.source or '?'} ({paper.confidence or '?'})"


def overview_cell(ev: EvalReport | None) -> str:
    if ev is None:
        return "-"
    student, gain = ev.rows[ev.primary], ev.rows[gain_role(ev.primary)]
    if student.stat is None:
        return student.status
    gain_text = f" ({fmt(gain.stat.mean, signed=True)})" if gain.stat else ""
    return f"{fmt(student.stat.mean)}{gain_text} {ev.verdict}"


# ---------------------------------------------------------------- a renderer-neutral document


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class TableBlock:
    title: str
    headers: list[str]
    rows: list[list[str]]
    terminal_hidden: tuple[str, ...] = ()  # columns too wide for an 80-column terminal


@dataclass
class Image:
    path: str  # relative to the profile's report folder
    alt: str


Block: TypeAlias = Heading | Paragraph | TableBlock | Image


def fmt_stat(stat: Stat | None, signed: bool = False, fallback: str = NOT_AVAILABLE) -> str:
    if stat is None:
        return fallback
    text = fmt(stat.mean, signed=signed)
    return text if stat.std is None else f"{text} ± {stat.std:.2f}"


def fmt_beside(row: Row) -> str:
    if is_gain(row.role):
        return ""
    return fmt_stat(row.beside, fallback=NOT_AVAILABLE if row.stat is not None else row.status)


DETAIL_HEADERS = ["encoder", "status", "measured", "95% CI", "paper", "delta", "verdict", "paper source (confidence)"]
BEST_EPOCH_TEXT = (
    "For the probes trained over epochs (linear, semi-supervised, transfer), `measured` is the best epoch's top-1 "
    "(`top1_best`): the number the official scripts report (best_acc1 = max over the epochs, each scored on the test set); "
    "`last epoch` is the top-1 after the final epoch."
)


def mode_text(report: ProfileReport) -> str:
    if report.absolute:
        return (
            f"Profile `{report.profile}`: absolute verdicts. `reproduced` when |measured - paper| <= {report.tolerance:g} "
            f"(top-1 points), else `below` / `above`; rows without a paper number are `n/a`. A cell built on a collapsed "
            "encoder is `unhealthy` whatever its numbers."
        )
    return (
        f"Profile `{report.profile}`: the paper column is ImageNet context only. The claim tested is the paper's direction: "
        "the distilled student beats the baseline its profile's base method trains, with the same data and recipe "
        "(the gain, paired by seed). One seed gives `same direction` / `opposite direction`; "
        "with several, `reproduced` when the gain's 95% interval excludes 0 on the paper's side, `contradicted` when it excludes 0 "
        "on the other, `inconclusive` otherwise. A cell built on a collapsed encoder is `unhealthy` whatever its numbers."
    )


def overview_table(report: ProfileReport) -> TableBlock:
    evaluations = report.evaluations()
    primaries = {ev.primary for pair in report.pairs for ev in pair.evals}
    student = method_label(primaries.pop()) if len(primaries) == 1 else "the verdict's method"
    headers = [
        "pair",
        "teacher",
        "student",
        "seeds",
        *[f"{ev} {metric}: {student} (gain) verdict" for ev, metric in evaluations],
    ]
    rows = []
    for pair in report.pairs:
        by_name = {ev.evaluation: ev for ev in pair.evals}
        rows.append(
            [
                pair.pair,
                pair.teacher,
                pair.student,
                str(len(pair.seeds)),
                *[overview_cell(by_name.get(ev)) for ev, _ in evaluations],
            ]
        )
    return TableBlock(f"overview · profile {report.profile}", headers, rows)


def detail_table(report: ProfileReport, pair: PairReport, ev: EvalReport) -> TableBlock:
    seeds = ",".join(str(seed) for seed in pair.seeds)
    title = f"{pair.pair} · profile {report.profile} · {ev.evaluation} {ev.metric} (%) · seed{'s' if len(pair.seeds) > 1 else ''} {seeds}"
    with_reference = report.reference is not None
    rows = [
        [
            row.label or role_label(role),
            row.status,
            fmt_measured(row),
            *([fmt_beside(row)] if ev.beside else []),
            fmt_ci(row),
            *([fmt_stat(row.reference, signed=is_gain(role))] if with_reference else []),
            fmt_paper(row),
            fmt(row.delta, signed=True),
            row.verdict,
            fmt_source(row.paper),
        ]
        for role, row in ev.rows.items()
    ]
    headers = (
        ["encoder", "status", "this run"]
        + ([ev.beside[1]] if ev.beside else [])
        + ["95% CI"]
        + (["reference run"] if with_reference else [])
        + DETAIL_HEADERS[4:]
    )
    return TableBlock(title, headers, rows, terminal_hidden=(DETAIL_HEADERS[-1],))


HEALTH_HEADERS = [
    "encoder",
    "stage",
    "health",
    "loss / ln(K+1)",
    "emb. cosine",
    "emb. eff. rank",
    "feat. cosine",
    "kNN monitor",
    "why",
]


def health_table(pair: PairReport) -> TableBlock:
    def value(entry: StageHealth, name: str, digits: int = 2) -> str:
        number = entry.metrics.get(f"final_{name}")
        return fmt(number, digits) if isinstance(number, (int, float)) else NOT_AVAILABLE

    rows = [
        [
            entry.label or role_label(entry.role),
            entry.stage,
            entry.status,
            value(entry, "ce_chance_ratio"),
            value(entry, "emb_cosine"),
            value(entry, "emb_erank", 1),
            value(entry, "feat_cosine"),
            value(entry, "knn_top1", 1),
            "; ".join(entry.reasons),
        ]
        for entry in pair.health
    ]
    return TableBlock(
        f"{pair.pair} · training health (final epoch; held-out batch, eval mode)",
        HEALTH_HEADERS,
        rows,
        terminal_hidden=("stage", "why"),
    )


HEALTH_TEXT = (
    "Training health (disco/health.py, docs/health.md), after the last epoch: the contrastive loss / ln(K+1) is 1 at chance "
    "(the positive no likelier than each of its K negatives; K is the method's own: MoCo-v2's queue, SimCLR's 2N-2 other "
    "views of the batch); the mean pairwise cosine and the effective rank are of the L2-normalised embeddings "
    "(`emb.`) and pooled backbone features (`feat.`) of a fixed held-out batch. `collapsed`: cosine > 0.9 or loss >= 0.97 "
    "ln(K+1); `weak`: cosine > 0.5 or loss > 0.85 ln(K+1). The curves show every epoch."
)


def teachers_text(report: ProfileReport) -> str:
    listed = "; ".join(f"{name} {source}" for name, source in report.teachers.items())
    return (
        f"Teachers: {listed}. imported: the released file named in `profiles.<profile>.teacher_checkpoints`, loaded "
        "strictly; trained here: by this profile's recipe (where it names no release, or `run --pretrain-teachers`)."
    )


def notes(report: ProfileReport) -> list[Block]:
    excluded = [f"`{name}` ({reason})" for name, reason in report.excluded.items()]
    return [
        Heading("Notes", 2),
        Paragraph(
            "n/a: the paper gives no number for this entry (null in benchmarks.yaml `reference:`); it is never estimated. "
            "* marks a paper gain derived from a DisCo and a baseline number of the same source where no gain is stated."
        ),
        Paragraph(
            "pending: no stored result for that stage yet. stale: a result is stored under the stage's name but for another "
            "config or code version (its key differs), so it is not used. k/n seeds: only k of the n seeds are stored."
        ),
        Paragraph(
            "this run: the mean over seeds ± the sample standard deviation; 95% CI: the Student-t interval of the mean "
            "(2 or more seeds). The gain is paired by seed (DisCo minus the baseline of the same seed)."
            + (
                " reference run: the committed run's value for the same stage (same key), for comparison with this machine."
                if report.reference
                else ""
            )
        ),
        Paragraph("n/a as a status: the evaluation does not run on that encoder (`evaluations.<name>.archs`)."),
        *([Paragraph(teachers_text(report))] if report.teachers else []),
        *(
            [Paragraph(BEST_EPOCH_TEXT)]
            if any(ev.metric == "top1_best" for pair in report.pairs for ev in pair.evals)
            else []
        ),
        *(
            [
                Paragraph(
                    f"Not in the `{report.profile}` default (still runnable by name with `--evals`): "
                    + "; ".join(excluded)
                    + "."
                )
            ]
            if excluded
            else []
        ),
    ]


PAPER_TABLES_TEXT = (
    "The paper's tables (benchmarks.yaml `paper_tables:`), laid out as the paper lays them out: a row per student and "
    "method, a column per teacher. Each cell: this run's mean with its 95% interval over seeds, `ref` the reference run, "
    "`paper` the paper's number (n/a: none recovered), and the verdict; a cell not run names the command that fills it; "
    "- : the matrix has no such pair."
)


def table_cell_text(cell: TableCell, signed: bool = False) -> str:
    if cell.pair is None:
        return "-"
    paper = "n/a" if cell.paper is None else fmt(cell.paper.value, signed=signed) + ("*" if cell.paper.derived else "")
    row = cell.row
    if row is None or row.stat is None:
        status = row.status if row is not None and row.status != NOT_AVAILABLE else "not run"
        return f"{status} · paper {paper} · `{cell.command}`"
    interval = row.stat.ci95
    text = fmt(row.stat.mean, signed=signed) + (f" [{fmt(interval[0])}, {fmt(interval[1])}]" if interval else "")
    text += f" · ref {fmt(row.reference.mean)}" if row.reference is not None else ""
    text += f" · paper {paper}"
    return text + (f" · {row.verdict}" if row.verdict not in (NOT_AVAILABLE, "") else "")


def sweep_table(pair: PairReport, sweep: SweepReport) -> TableBlock:
    """A method's students by head width (run --sweep): the Distilling Bottleneck, as this run measured it."""
    rows = [
        [str(point.width), method_role_label(point.role), fmt_stat(point.stat), fmt_interval(point.stat)]
        for point in sweep.points
    ]
    return TableBlock(
        f"{pair.pair} · {method_role_label(sweep.method)} student by head hidden width · {sweep.evaluation} {sweep.metric} (%)",
        ["head hidden width", "student", "this run", "95% CI"],
        rows,
    )


def fmt_interval(stat: Stat | None) -> str:
    interval = stat.ci95 if stat is not None else None
    return f"[{interval[0]:.1f}, {interval[1]:.1f}]" if interval else NOT_AVAILABLE


def paper_table_blocks(report: ProfileReport) -> list[Block]:
    blocks: list[Block] = [Heading("The paper's tables", 2), Paragraph(PAPER_TABLES_TEXT)]
    for table in report.tables:
        headers = ["student", "encoder", *table.teachers]
        rows = [[row.student, row.label, *(table_cell_text(cell) for cell in row.cells)] for row in table.rows]
        blocks.append(TableBlock(f"{table.title} · {table.evaluation} {table.metric} (%)", headers, rows))
    return blocks


def document(
    report: ProfileReport,
    images: list[Image] | None = None,
    overview: bool = True,
    extras: bool = True,
    curves: dict[str, list[Image]] | None = None,
    sweep_images: dict[str, list[Image]] | None = None,
) -> list[Block]:
    blocks: list[Block] = []
    if extras:
        blocks += [
            Heading(f"disco-bench report · profile {report.profile}", 1),
            Paragraph(mode_text(report)),
            Paragraph(
                f"Regenerate from the stored results (trains nothing): `disco-bench report --profile {report.profile.removesuffix('-smoke')}"
                f"{' --smoke' if report.profile.endswith('-smoke') else ''}`."
            ),
        ]
        if report.reference:
            blocks.append(Paragraph(f"Reference run: {report.reference}."))
    if overview:
        blocks += [Heading("Overview", 2), overview_table(report)]
    if overview and report.tables:
        blocks += paper_table_blocks(report)
    for pair in report.pairs:
        if extras:
            blocks.append(Heading(f"{pair.pair} (teacher {pair.teacher}, student {pair.student})", 2))
        if pair.deviations:
            blocks.append(
                Paragraph(
                    f"Deviations from the official computation ({pair.pair}): " + "; ".join(pair.deviations) + "."
                )
            )
        if pair.health:
            blocks += [
                health_table(pair),
                *([Paragraph(HEALTH_TEXT)] if extras else []),
                *((curves or {}).get(pair.pair, [])),
            ]
        for ev in pair.evals:
            blocks += [
                detail_table(report, pair, ev),
                Paragraph(f"Verdict ({pair.pair}, {ev.evaluation}): {ev.verdict}: {ev.note}. {ev.discrimination}."),
            ]
        blocks += [sweep_table(pair, sweep) for sweep in pair.sweeps]
        blocks += (sweep_images or {}).get(pair.pair, [])
    if images:
        blocks += [Heading("Plots", 2), *images]
    return blocks + (notes(report) if extras else [])
