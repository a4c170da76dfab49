"""Reports from the stored stage results only (nothing is trained, no result is modified): measured
vs the paper per cell and evaluation, the DisCo gain over the MoCo-v2 baseline, seed statistics and
a verdict; rendered to the terminal (rich) and to markdown, CSV, HTML and PNG plots under
results/<profile>/ (plus results/README.md for the committed tiny profile).

Verdicts. At the `paper` profile they are absolute: |measured - paper| <= tolerance is `reproduced`,
else `below` / `above`. At every other profile the paper column is ImageNet context only and the
verdict is about direction: random-init < MoCo-v2 baseline < DisCo (the sign of the gain)."""

from __future__ import annotations

import csv
import html
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from disco.damaged import remove_leftover_temps
from harness.config import Benchmarks
from harness.matrix import CellPlan, Planner
from harness.results import load_result
from harness.stages import Stage
from harness.workspace import Workspace, atomic_write_bytes

ROLES = ("random_init", "baseline", "disco", "teacher")  # table order: the expected ordering, then the teacher
ROLE_LABELS = {"random_init": "random-init (control)", "baseline": "MoCo-v2 baseline", "disco": "DisCo student", "teacher": "MoCo-v2 teacher", "gain": "DisCo - baseline gain"}
ABSOLUTE_PROFILE = "paper"
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}
DEFAULT_TOLERANCE = 1.0
REPRODUCED, BELOW, ABOVE, PENDING, NOT_AVAILABLE, CONTEXT, CONTROL = "reproduced", "below", "above", "pending", "n/a", "context", "control"

# The one number a column shows per evaluation; exact names first, then prefixes (semi_*, transfer_*).
# Probes trained over epochs report the best epoch, as the official scripts do (main_lincls.py,
# main_lincls_semi.py, cifar_main_lincls.py: best_acc1 = max(acc1, best_acc1)); detection: COCO-style
# AP as detectron2 writes it (AP, AP50, AP75).
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "linear": ("top1_best", "top1"), "knn": ("top1",), "semi_": ("top1_best", "top1"), "transfer_": ("top1_best", "top1"),
    "detection": ("AP", "AP50", "map", "ap"), "detection_": ("AP", "AP50"),
}
FALLBACK_METRICS = ("top1", "AP", "map", "ap", "accuracy")
# shown beside the headline: (metric, column header, what the report text says about it)
BESIDE_METRICS: dict[str, tuple[str, str]] = {
    "top1_best": ("top1", "last epoch"),
    "AP": ("AP50", "AP50"),
}
BEST_EPOCH_TEXT = ("For the probes trained over epochs (linear, semi-supervised, transfer), `measured` is the best epoch's top-1 "
                   "(`top1_best`): the number the official scripts report (best_acc1 = max over the epochs, each scored on the test set); "
                   "`last epoch` is the top-1 after the final epoch.")
BOOKKEEPING_METRICS = {"num_train", "num_test", "epochs"}
# Two-sided 95% Student-t critical values by degrees of freedom (scipy is not a dependency).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
         21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
         40: 2.021, 60: 2.000, 120: 1.980}


# ---------------------------------------------------------------- statistics


def t_critical(df: int) -> float:
    """The tabulated value at the largest df <= `df` (conservative between rows); 1.96 beyond 120."""
    if df > max(T_975):
        return 1.960
    return T_975[max(row for row in T_975 if row <= df)]


@dataclass(frozen=True)
class Stat:
    values: tuple[float, ...]  # one per seed that is done

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:  # sample standard deviation (n - 1)
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.std is None:
            return None
        half = t_critical(self.n - 1) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half


# ---------------------------------------------------------------- the paper's numbers


@dataclass(frozen=True)
class PaperValue:
    value: float
    source: str | None = None
    confidence: str | None = None
    derived: bool = False  # a gain computed from the paper's DisCo and baseline numbers


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(entry: dict[str, Any], key: str, prefix: str = "") -> PaperValue | None:
    value = entry.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None  # null stays n/a: never guessed
    return PaperValue(float(value), entry.get(f"{prefix}source"), entry.get(f"{prefix}confidence"))


def paper_metric(metric: str) -> str:
    """The paper's top-1 numbers come from the official protocol, i.e. the best epoch."""
    return "top1" if metric == "top1_best" else metric


def paper_entry(bench: Benchmarks, pair: str, role: str) -> dict[str, Any]:
    ref, cell = bench.reference, bench.pairs[pair]
    if role == "teacher":
        return _mapping(_mapping(ref.get("teachers")).get(cell.teacher))
    if role == "baseline":
        return _mapping(_mapping(ref.get("baselines")).get(cell.student))
    if role == "disco":
        return _mapping(_mapping(_mapping(ref.get("pairs")).get(pair)).get("disco"))
    return {}


def paper_value(bench: Benchmarks, pair: str, role: str, evaluation: str, metric: str) -> PaperValue | None:
    """The reference numbers are ImageNet linear-probe numbers; other evaluations have none recorded yet."""
    if evaluation != "linear":
        return None
    return _number(paper_entry(bench, pair, role), paper_metric(metric))


def paper_gain(bench: Benchmarks, pair: str, evaluation: str, metric: str) -> PaperValue | None:
    if evaluation != "linear":
        return None
    stated = _number(paper_entry(bench, pair, "disco"), "gain_over_baseline", prefix="gain_") if paper_metric(metric) == "top1" else None
    if stated:
        return stated
    disco, baseline = paper_value(bench, pair, "disco", evaluation, metric), paper_value(bench, pair, "baseline", evaluation, metric)
    # Only within one source: DisCo retrained its own baselines, so another paper's baseline gives no DisCo gain.
    if disco and baseline and disco.source == baseline.source:
        confidence = min((disco.confidence, baseline.confidence), key=lambda c: CONFIDENCE_RANK.get(c or "", -1))
        return PaperValue(disco.value - baseline.value, disco.source, confidence, derived=True)
    return None


# ---------------------------------------------------------------- measured values


@dataclass(frozen=True)
class Stored:
    status: str  # "done" | "stale" (stored under another key: config or code changed) | "pending"
    metrics: dict[str, Any] = field(default_factory=dict)


def stored(workspace: Workspace, stage: Stage) -> Stored:
    result = load_result(workspace.result_path(stage.profile, stage.name))
    if result is None:
        return Stored("pending")
    if result.stage.key != stage.key:
        return Stored("stale")
    return Stored("done", result.metrics)


def headline_metric(evaluation: str, metrics: list[dict[str, Any]]) -> str:
    preferred = HEADLINE_METRICS.get(evaluation) or next((names for prefix, names in HEADLINE_METRICS.items() if prefix.endswith("_") and evaluation.startswith(prefix)), ())
    candidates = [*preferred, *FALLBACK_METRICS]
    for name in candidates:
        if any(_is_value(m.get(name)) for m in metrics):
            return name
    for m in metrics:
        for name, value in m.items():
            if _is_value(value) and name not in BOOKKEEPING_METRICS:
                return name
    return candidates[0]


def _is_value(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- the report model


@dataclass
class Row:
    role: str  # a ROLES entry or "gain"
    status: str  # "done", "2/3 seeds", "pending", "stale", "n/a" (the evaluation does not run on this encoder)
    stat: Stat | None
    paper: PaperValue | None
    verdict: str = NOT_AVAILABLE
    beside: Stat | None = None  # the EvalReport's beside metric (e.g. the last epoch)

    @property
    def delta(self) -> float | None:
        return None if self.stat is None or self.paper is None else self.stat.mean - self.paper.value


@dataclass
class EvalReport:
    evaluation: str
    metric: str
    rows: dict[str, Row]  # ROLES + "gain"
    verdict: str
    note: str
    beside: tuple[str, str] | None = None  # (metric, column header) shown beside the headline


@dataclass
class PairReport:
    pair: str
    teacher: str
    student: str
    seeds: list[int]
    evals: list[EvalReport]
    deviations: list[str] = field(default_factory=list)  # chosen departures from the official computation


@dataclass
class ProfileReport:
    profile: str  # the results label, e.g. "tiny" or "tiny-smoke"
    absolute: bool
    tolerance: float
    pairs: list[PairReport]

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
    values = tuple(float(run.metrics[metric]) for run in stored_runs if metric and run.status == "done" and _is_value(run.metrics.get(metric)))
    return Stat(values) if values else None


def role_row(role: str, stored_runs: list[Stored], metric: str, paper: PaperValue | None, beside: str | None = None) -> Row:
    return Row(role, seed_status([run.status for run in stored_runs]), metric_stat(stored_runs, metric), paper, beside=metric_stat(stored_runs, beside))


def gain_row(runs: dict[str, list[Stored]], metric: str, paper: PaperValue | None) -> Row:
    """Paired by seed: DisCo and the baseline of the same seed."""
    pairs = list(zip(runs["disco"], runs["baseline"]))
    values = tuple(
        float(d.metrics[metric]) - float(b.metrics[metric])
        for d, b in pairs
        if d.status == b.status == "done" and _is_value(d.metrics.get(metric)) and _is_value(b.metrics.get(metric))
    )
    both = ["done" if d.status == b.status == "done" else ("stale" if "stale" in (d.status, b.status) else PENDING) for d, b in pairs]
    return Row("gain", seed_status(both), Stat(values) if values else None, paper)


def evaluation_report(bench: Benchmarks, pair: str, cells: list[CellPlan], evaluation: str, workspace: Workspace, absolute: bool, tolerance: float) -> EvalReport:
    # an evaluation that does not run on a role's encoder (evaluations.<name>.archs) has no stage: n/a
    runs = {role: [stored(workspace, cell.evals[(role, evaluation)]) if (role, evaluation) in cell.evals else Stored(NOT_AVAILABLE) for cell in cells] for role in ROLES}
    metrics = [run.metrics for role_runs in runs.values() for run in role_runs]
    metric = headline_metric(evaluation, metrics)
    beside = beside_metric(metric, metrics)
    rows = {role: role_row(role, runs[role], metric, paper_value(bench, pair, role, evaluation, metric), beside and beside[0]) for role in ROLES}
    rows["gain"] = gain_row(runs, metric, paper_gain(bench, pair, evaluation, metric))
    verdict, note = (absolute_verdicts if absolute else direction_verdicts)(rows, tolerance)
    for row in rows.values():
        if row.status == NOT_AVAILABLE:
            row.verdict = NOT_AVAILABLE
    return EvalReport(evaluation, metric, rows, verdict, note, beside)


def beside_metric(metric: str, metrics: list[dict[str, Any]]) -> tuple[str, str] | None:
    beside = BESIDE_METRICS.get(metric)
    return beside if beside and any(_is_value(m.get(beside[0])) for m in metrics) else None



# ---------------------------------------------------------------- verdicts


def compare(measured: float, reference: float, tolerance: float) -> str:
    delta = measured - reference
    return REPRODUCED if abs(delta) <= tolerance else (BELOW if delta < 0 else ABOVE)


def absolute_verdicts(rows: dict[str, Row], tolerance: float) -> tuple[str, str]:
    for row in rows.values():
        if row.stat is None:
            row.verdict = PENDING
        elif row.paper is not None:
            row.verdict = compare(row.stat.mean, row.paper.value, tolerance)
    disco, gain = rows["disco"], rows["gain"]
    if disco.stat is None:
        return PENDING, "the DisCo student's evaluation has no stored result yet"
    if disco.paper is not None:
        return disco.verdict, f"DisCo {disco.stat.mean:.1f} vs the paper's {disco.paper.value:.1f} (tolerance ±{tolerance:g})"
    if gain.stat is not None and gain.paper is not None:
        return gain.verdict, f"the paper gives no DisCo number; gain {gain.stat.mean:+.1f} vs the paper's {gain.paper.value:+.1f} (tolerance ±{tolerance:g})"
    return NOT_AVAILABLE, "the paper gives neither a DisCo number nor a gain for this cell"


def ordered(lower: Row, upper: Row) -> str:
    if lower.stat is None or upper.stat is None:
        return PENDING
    return REPRODUCED if upper.stat.mean > lower.stat.mean else BELOW


def direction_verdicts(rows: dict[str, Row], tolerance: float) -> tuple[str, str]:
    rows["random_init"].verdict = CONTROL if rows["random_init"].stat else PENDING
    rows["teacher"].verdict = CONTEXT if rows["teacher"].stat else PENDING
    rows["baseline"].verdict = ordered(rows["random_init"], rows["baseline"])
    rows["disco"].verdict = ordered(rows["baseline"], rows["disco"])
    rows["gain"].verdict = PENDING if rows["gain"].stat is None else (REPRODUCED if rows["gain"].stat.mean > 0 else BELOW)
    checks = (rows["baseline"].verdict, rows["disco"].verdict)
    if PENDING in checks:
        return PENDING, "random-init, baseline and DisCo are not all stored yet"
    if checks == (REPRODUCED, REPRODUCED):
        return REPRODUCED, "same direction as the paper: DisCo > MoCo-v2 baseline > random init"
    if checks[1] != REPRODUCED:
        return BELOW, "DIFFERENT from the paper: DisCo does not beat the MoCo-v2 baseline here"
    return BELOW, "DIFFERENT from the paper: the MoCo-v2 baseline does not beat random init"


# ---------------------------------------------------------------- building a report


def build_report(bench: Benchmarks, cells: list[CellPlan], workspace: Workspace, tolerance: float = DEFAULT_TOLERANCE) -> ProfileReport:
    """One entry per pair (its cells are its seeds), evaluations in the order the cells list them."""
    by_pair: dict[str, list[CellPlan]] = {}
    for cell in cells:
        by_pair.setdefault(cell.pair, []).append(cell)
    label = cells[0].profile if cells else ABSOLUTE_PROFILE
    absolute = label == ABSOLUTE_PROFILE
    pairs = []
    for pair, pair_cells in by_pair.items():
        pair_cells.sort(key=lambda cell: cell.seed)
        evaluations = list(dict.fromkeys(evaluation for cell in pair_cells for _, evaluation in cell.evals))
        reports = [evaluation_report(bench, pair, pair_cells, ev, workspace, absolute, tolerance) for ev in evaluations]
        spec = bench.pairs[pair]
        pairs.append(PairReport(pair, spec.teacher, spec.student, [cell.seed for cell in pair_cells], reports, deviations(pair_cells)))
    return ProfileReport(label, absolute, tolerance, pairs)


def deviations(cells: list[CellPlan]) -> list[str]:
    """Chosen departures from the official computation that the stage configs record."""
    bf16 = list(dict.fromkeys(stage.name for cell in cells for stage in (cell.teacher, cell.baseline, cell.disco) if stage.config.get("precision") == "bf16"))
    if not bf16:
        return []
    return [f"bf16 autocast in training (precision: bf16; the official code is fp32, embeddings differ by ~1e-2) for {', '.join(bf16)}"]


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


def pair_evidence(planner: Planner, pair: str, workspace: Workspace) -> tuple[set[int], list[str]]:
    """Seeds and evaluations with stored results for this pair's DisCo student (the stage unique to the pair)."""
    spec = planner.bench.pairs[pair]
    disco = planner.disco(spec.teacher, spec.student, 0)
    seeds, evaluations = stored_seeds(workspace, disco), []
    for evaluation in planner.runnable_evaluations():
        found = stored_seeds(workspace, planner.evaluation(evaluation, disco, 0))
        if found:
            seeds |= found
            evaluations.append(evaluation)
    return seeds, evaluations


def profile_cells(planner: Planner, workspace: Workspace, pairs: list[str] | None = None, all_pairs: bool = False) -> list[CellPlan]:
    """The cells a profile report covers: the named pairs, or every pair, or the default pairs plus
    every pair with stored results; each at every stored seed, with its evaluations plus any stored one."""
    bench = planner.bench
    evidence = {pair: pair_evidence(planner, pair, workspace) for pair in bench.pairs}
    if pairs:
        chosen = list(dict.fromkeys(pairs))
    elif all_pairs:
        chosen = list(bench.pairs)
    else:
        chosen = [p for p in bench.pairs if p in bench.default_pairs or evidence[p][0]]
    cells = []
    for pair in chosen:
        planner.cell(pair)  # a misspelled --pair: one error line with "did you mean"
        seeds, stored_evals = evidence[pair]
        evaluations = list(dict.fromkeys([*(bench.pairs[pair].evals or planner.profile.evals), *stored_evals]))
        cells += [planner.cell(pair, seed, evaluations) for seed in sorted(seeds | {0})]
    return cells


def planner_for_label(bench: Benchmarks, label: str) -> Planner:
    smoke = label.endswith("-smoke") and label.removesuffix("-smoke") in bench.profiles
    return Planner(bench, label.removesuffix("-smoke") if smoke else label, smoke=smoke)


# ---------------------------------------------------------------- formatting


def fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return NOT_AVAILABLE
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_measured(row: Row) -> str:
    if row.stat is None:
        return row.status  # pending / stale
    text = fmt(row.stat.mean, signed=row.role == "gain")
    return text if row.stat.std is None else f"{text} ± {row.stat.std:.2f}"


def fmt_ci(row: Row) -> str:
    interval = row.stat.ci95 if row.stat else None
    signed = row.role == "gain"
    return "" if interval is None else f"[{fmt(interval[0], signed=signed)}, {fmt(interval[1], signed=signed)}]"


def fmt_paper(row: Row) -> str:
    if row.paper is None:
        return NOT_AVAILABLE
    return fmt(row.paper.value, signed=row.role == "gain") + ("*" if row.paper.derived else "")


def fmt_source(paper: PaperValue | None) -> str:
    if paper is None:
        return ""
    return f"{paper.source or '?'} ({paper.confidence or '?'})"


def overview_cell(ev: EvalReport | None) -> str:
    if ev is None:
        return "-"
    disco, gain = ev.rows["disco"], ev.rows["gain"]
    if disco.stat is None:
        return disco.status
    gain_text = f" ({fmt(gain.stat.mean, signed=True)})" if gain.stat else ""
    return f"{fmt(disco.stat.mean)}{gain_text} {ev.verdict}"


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


Block = Heading | Paragraph | TableBlock | Image
DETAIL_HEADERS = ["encoder", "status", "measured", "95% CI", "paper", "delta", "verdict", "paper source (confidence)"]


def mode_text(report: ProfileReport) -> str:
    if report.absolute:
        return (f"Profile `{report.profile}`: absolute verdicts. `reproduced` when |measured - paper| <= {report.tolerance:g} "
                f"(top-1 points), else `below` / `above`; rows without a paper number are `n/a`.")
    return (f"Profile `{report.profile}`: the paper column is ImageNet context only. Verdicts are about direction, as in the paper: "
            "random-init < MoCo-v2 baseline < DisCo, i.e. the sign of the DisCo gain; absolute numbers are not compared.")


def overview_table(report: ProfileReport) -> TableBlock:
    evaluations = report.evaluations()
    headers = ["pair", "teacher", "student", "seeds", *[f"{ev} {metric}: DisCo (gain) verdict" for ev, metric in evaluations]]
    rows = []
    for pair in report.pairs:
        by_name = {ev.evaluation: ev for ev in pair.evals}
        rows.append([pair.pair, pair.teacher, pair.student, str(len(pair.seeds)), *[overview_cell(by_name.get(ev)) for ev, _ in evaluations]])
    return TableBlock(f"overview · profile {report.profile}", headers, rows)


def detail_table(report: ProfileReport, pair: PairReport, ev: EvalReport) -> TableBlock:
    seeds = ",".join(str(seed) for seed in pair.seeds)
    title = f"{pair.pair} · profile {report.profile} · {ev.evaluation} {ev.metric} (%) · seed{'s' if len(pair.seeds) > 1 else ''} {seeds}"
    rows = [
        [ROLE_LABELS[role], row.status, fmt_measured(row), *([fmt_beside(row)] if ev.beside else []), fmt_ci(row), fmt_paper(row), fmt(row.delta, signed=True), row.verdict, fmt_source(row.paper)]
        for role, row in ((role, ev.rows[role]) for role in (*ROLES, "gain"))
    ]
    headers = DETAIL_HEADERS[:3] + ([ev.beside[1]] if ev.beside else []) + DETAIL_HEADERS[3:]
    return TableBlock(title, headers, rows, terminal_hidden=(DETAIL_HEADERS[-1],))


def fmt_beside(row: Row) -> str:
    if row.role == "gain":
        return ""
    if row.beside is None:
        return NOT_AVAILABLE if row.stat is not None else row.status
    return fmt(row.beside.mean) if row.beside.std is None else f"{fmt(row.beside.mean)} ± {row.beside.std:.2f}"


def notes(report: ProfileReport) -> list[Block]:
    return [
        Heading("Notes", 2),
        Paragraph("n/a: the paper gives no number for this entry (null in benchmarks.yaml `reference:`); it is never estimated. "
                  "* marks a paper gain derived from a DisCo and a baseline number of the same source where no gain is stated."),
        Paragraph("pending: no stored result for that stage yet. stale: a result is stored under the stage's name but for another "
                  "config or code version (its key differs), so it is not used. k/n seeds: only k of the n seeds are stored."),
        Paragraph("measured: the mean over seeds ± the sample standard deviation; 95% CI: the Student-t interval of the mean "
                  "(2 or more seeds). The gain is paired by seed (DisCo minus the baseline of the same seed)."),
        Paragraph("n/a as a status: the evaluation does not run on that encoder (`evaluations.<name>.archs`)."),
        *([Paragraph(BEST_EPOCH_TEXT)] if any(ev.metric == "top1_best" for pair in report.pairs for ev in pair.evals) else []),
    ]


def document(report: ProfileReport, images: list[Image] | None = None, overview: bool = True, extras: bool = True) -> list[Block]:
    blocks: list[Block] = []
    if extras:
        blocks += [Heading(f"disco-bench report · profile {report.profile}", 1), Paragraph(mode_text(report)),
                   Paragraph(f"Regenerate from the stored results (trains nothing): `disco-bench report --profile {report.profile.removesuffix('-smoke')}"
                             f"{' --smoke' if report.profile.endswith('-smoke') else ''}`.")]
    if overview:
        blocks += [Heading("Overview", 2), overview_table(report)]
    for pair in report.pairs:
        if extras:
            blocks.append(Heading(f"{pair.pair} (teacher {pair.teacher}, student {pair.student})", 2))
        if pair.deviations:
            blocks.append(Paragraph(f"Deviations from the official computation ({pair.pair}): " + "; ".join(pair.deviations) + "."))
        for ev in pair.evals:
            context = "" if report.absolute else "The paper column is ImageNet context only; at this profile the verdict is about direction: "
            blocks += [detail_table(report, pair, ev), Paragraph(f"Verdict ({pair.pair}, {ev.evaluation}): {ev.verdict}. {context}{ev.note}")]
    if images:
        blocks += [Heading("Plots", 2), *images]
    return blocks + (notes(report) if extras else [])


# ---------------------------------------------------------------- renderers


def render_terminal(console: Console, blocks: list[Block]) -> None:
    for block in blocks:
        if isinstance(block, Heading):
            console.print(f"[bold]{escape(block.text)}[/]")
        elif isinstance(block, Paragraph):
            console.print(escape(block.text))
        elif isinstance(block, TableBlock):
            console.print(terminal_table(block))


def terminal_table(block: TableBlock) -> Table:
    """Hidden and all-empty columns (the CI of a single seed) are left out."""
    shown = [i for i, header in enumerate(block.headers) if header not in block.terminal_hidden and any(row[i] for row in block.rows)]
    table = Table(title=block.title)
    for i in shown:
        table.add_column(block.headers[i], justify="left" if i == 0 or block.headers[i] in ("status", "verdict") else "right", no_wrap=i == 0)
    for row in block.rows:
        table.add_row(*(escape(row[i]) for i in shown), style="bold" if row[0] == ROLE_LABELS["gain"] else None)
    return table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[Block], image_prefix: str = "", heading_offset: int = 0) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * (block.level + heading_offset) + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, TableBlock):
            lines += [f"**{block.title}**", "", "| " + " | ".join(map(_md_cell, block.headers)) + " |", "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows] + [""]
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({image_prefix}{block.path})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _html_text(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:.5em 0 1em}"
              "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
              "caption{font-weight:bold;text-align:left;padding:.3em 0}img{max-width:100%}")


def render_html(blocks: list[Block], title: str) -> str:
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, TableBlock):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in block.rows)
            parts.append(f"<table><caption>{html.escape(block.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            parts.append(f"<p><img src=\"{html.escape(block.path)}\" alt=\"{html.escape(block.alt)}\"></p>")
    return "\n".join(parts) + "\n</body></html>\n"


CSV_FIELDS = ["profile", "pair", "teacher", "student", "evaluation", "metric", "role", "status", "seeds", "n", "mean", "std",
              "ci95_low", "ci95_high", "values", "paper", "paper_source", "paper_confidence", "paper_derived", "delta", "verdict",
              "beside_metric", "beside_mean"]


def _num(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.4f}"


def csv_record(report: ProfileReport, pair: PairReport, ev: EvalReport, row: Row) -> dict[str, str]:
    stat, paper, interval = row.stat, row.paper, row.stat.ci95 if row.stat else None
    return {
        "profile": report.profile, "pair": pair.pair, "teacher": pair.teacher, "student": pair.student, "evaluation": ev.evaluation,
        "metric": ev.metric, "role": row.role, "status": row.status, "seeds": str(len(pair.seeds)), "n": str(stat.n if stat else 0),
        "mean": _num(stat.mean if stat else None), "std": _num(stat.std if stat else None),
        "ci95_low": _num(interval[0] if interval else None), "ci95_high": _num(interval[1] if interval else None),
        "values": ";".join(f"{v:.4f}" for v in stat.values) if stat else "", "paper": _num(paper.value if paper else None),
        "paper_source": (paper.source or "") if paper else "", "paper_confidence": (paper.confidence or "") if paper else "",
        "paper_derived": str(bool(paper and paper.derived)).lower(), "delta": _num(row.delta), "verdict": row.verdict,
        "beside_metric": ev.beside[0] if ev.beside else "", "beside_mean": _num(row.beside.mean) if row.beside else "",
    }


def render_csv(report: ProfileReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for pair in report.pairs:
        for ev in pair.evals:
            for role in (*ROLES, "gain"):
                writer.writerow(csv_record(report, pair, ev, ev.rows[role]))
    return buffer.getvalue()


# ---------------------------------------------------------------- plots


def plot_student(report: ProfileReport, student: str, evaluation: str, metric: str) -> bytes | None:
    """Baseline and DisCo bars per teacher (± sd over seeds), the teacher's own accuracy as a marker."""
    entries = [(pair.teacher, ev) for pair in report.pairs if pair.student == student for ev in pair.evals if ev.evaluation == evaluation]
    if not entries:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colors = {"baseline": "#9aa5b1", "disco": "#2f6fdf"}
    fig, ax = plt.subplots(figsize=(1.2 * len(entries) + 4.0, 3.6))
    width = 0.38
    for x, (teacher, ev) in enumerate(entries):
        for offset, role in ((-width / 2, "baseline"), (width / 2, "disco")):
            row = ev.rows[role]
            if row.stat is None:
                ax.text(x + offset, 0, row.status, rotation=90, ha="center", va="bottom", fontsize=7)
            else:
                ax.bar(x + offset, row.stat.mean, width, yerr=row.stat.std, capsize=3, color=colors[role])
        teacher_row = ev.rows["teacher"]
        if teacher_row.stat is not None:
            ax.plot([x - width, x + width], [teacher_row.stat.mean] * 2, color="black", linewidth=2)
    ax.set_xticks(range(len(entries)), [f"teacher {teacher}" for teacher, _ in entries])
    ax.set_xlim(-0.7, len(entries) - 0.3)
    ax.set_ylabel(f"{evaluation} {metric} (%)")
    ax.set_title(f"student {student} · profile {report.profile}")
    handles = [Patch(color=colors["baseline"], label=ROLE_LABELS["baseline"]), Patch(color=colors["disco"], label=ROLE_LABELS["disco"]),
               Line2D([], [], color="black", linewidth=2, label="teacher")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    heights = [ev.rows[role].stat.mean for _, ev in entries for role in ("baseline", "disco", "teacher") if ev.rows[role].stat]
    ax.set_ylim(0, max(max(heights, default=100.0), 1.0) * 1.1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


# ---------------------------------------------------------------- files


COMMITTED_PROFILE = "tiny"  # its results and report are committed; results/README.md shows it


def write_report_files(report: ProfileReport, workspace: Workspace) -> list[Path]:
    """report.md/.csv/.html and plots/<student>-<evaluation>.png under results/<profile>/ (and
    results/README.md for the committed profile). Only these files are written."""
    folder = workspace.results / report.profile
    for directory in (folder, folder / "plots", workspace.results):  # temp files of a killed run's writes
        remove_leftover_temps(directory, None, only_dead_writers=True)
    written, images = [], []
    for student in dict.fromkeys(pair.student for pair in report.pairs):
        for evaluation, metric in report.evaluations():
            png = plot_student(report, student, evaluation, metric)
            if png is not None:
                relative = f"plots/{student}-{evaluation}.png"
                atomic_write_bytes(folder / relative, png)
                written.append(folder / relative)
                images.append(Image(relative, f"student {student}, {evaluation} {metric}"))
    blocks = document(report, images)
    outputs = {"report.md": render_markdown(blocks), "report.csv": render_csv(report), "report.html": render_html(blocks, f"disco-bench report · {report.profile}")}
    for name, text in outputs.items():
        atomic_write_bytes(folder / name, text.encode())
        written.append(folder / name)
    if report.profile == COMMITTED_PROFILE:
        readme = workspace.results / "README.md"
        atomic_write_bytes(readme, results_readme(report, blocks).encode())
        written.append(readme)
    return written


def results_readme(report: ProfileReport, blocks: list[Block]) -> str:
    intro = f"""# disco-bench results

One typed JSON per finished stage lives in `<profile>/stages/<stage>.json` (metrics, config, provenance);
the reports are rendered from those files only. The `{report.profile}` profile's results are committed and
this README is its report. Regenerate it (reads the stored JSON, trains nothing, takes seconds):

    disco-bench report --profile {report.profile}        # or: make report

Rerun the benchmark itself with `disco-bench run --pair r50-effb0 --profile {report.profile}` (or `make bench`).
Files: `{report.profile}/report.md`, `{report.profile}/report.csv`, `{report.profile}/report.html`, `{report.profile}/plots/*.png`.

"""
    return intro + render_markdown(blocks, image_prefix=f"{report.profile}/", heading_offset=1)


def print_cell_reports(console: Console, bench: Benchmarks, cells: list[CellPlan], workspace: Workspace, tolerance: float = DEFAULT_TOLERANCE, write_files: bool = True) -> list[Path]:
    """After a run: the tables of the cells just run, then the profile's report files, regenerated
    from every stored result (the same files `disco-bench report` writes)."""
    if not cells:
        return []
    render_terminal(console, document(build_report(bench, cells, workspace, tolerance), overview=False, extras=False))
    if not write_files:
        return []
    full = build_report(bench, profile_cells(planner_for_label(bench, cells[0].profile), workspace), workspace, tolerance)
    written = write_report_files(full, workspace)
    console.print(f"report: {workspace.results / full.profile / 'report.md'} (+ .csv, .html, {sum(p.suffix == '.png' for p in written)} plot(s))")
    return written
