"""The report model: per cell and evaluation the measured numbers of this run, of the reference run and
the paper's, the paired method - baseline gains with their seed statistics, the training health of the
encoders behind them, and a verdict. Data only: collect.py reads stored results, health.py the
training health, compose.py builds the model and its verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.report.paper import PaperValue
from harness.report.roles import ENCODER_ROLES, is_gain
from harness.report.stats import Stat
from harness.report.verdicts import (
    NOT_AVAILABLE,
)

ABSOLUTE_PROFILE = "paper"


DEFAULT_TOLERANCE = 1.0


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
class SweepPoint:
    width: int  # the student head's hidden width
    role: str  # the row it comes from: the method's default row or a swept `<method>@h<width>`
    stat: Stat | None  # this run, over its seeds


@dataclass
class SweepReport:
    """One evaluation of a method's students against their head width (benchmarks.yaml `sweeps:`)."""

    method: str
    evaluation: str
    metric: str
    points: list[SweepPoint]  # by width


@dataclass
class PairReport:
    pair: str
    teacher: str
    student: str
    seeds: list[int]
    evals: list[EvalReport]
    deviations: list[str] = field(default_factory=list)  # chosen departures from the official computation
    health: list[StageHealth] = field(default_factory=list)
    sweeps: list[SweepReport] = field(default_factory=list)


@dataclass
class TableCell:
    """One teacher's cell of a paper table's row: this run's row of the pair (None: not in this
    report), the paper's number, and the command that would fill it."""

    pair: str | None  # None: the matrix has no pair of this teacher and student
    row: Row | None = None
    paper: PaperValue | None = None
    command: str = ""


@dataclass
class TableRow:
    student: str  # "" for the teachers' own row
    role: str
    label: str
    cells: list[TableCell]  # one per teacher, in the table's order


@dataclass
class PaperTableReport:
    """One evaluation of one of the paper's tables (benchmarks.yaml `paper_tables:`)."""

    name: str
    title: str
    evaluation: str
    metric: str
    teachers: list[str]
    rows: list[TableRow]

    @property
    def measured(self) -> bool:
        return any(cell.row is not None and cell.row.stat is not None for row in self.rows for cell in row.cells)


@dataclass
class ProfileReport:
    profile: str  # the results label, e.g. "tiny" or "tiny-smoke"
    absolute: bool
    tolerance: float
    pairs: list[PairReport]
    reference: str | None = None  # where the reference run comes from (commit, hardware), if one was read
    excluded: dict[str, str] = field(default_factory=dict)  # evaluation -> why it is not in this profile's default
    tables: list[PaperTableReport] = field(default_factory=list)  # the paper's tables, laid out as the paper does
    teachers: dict[str, str] = field(default_factory=dict)  # teacher -> imported (its file) or trained here
    base_method: str | None = None  # the profile's base method: which testbed's paper numbers and tables apply

    def evaluations(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for pair in self.pairs:
            for ev in pair.evals:
                seen.setdefault(ev.evaluation, ev.metric)
        return list(seen.items())
