"""Reports from the stored stage results only (nothing is trained, no result is modified).

stats.py     seed statistics (mean, sd, Student-t interval)
paper.py     the paper's numbers and their provenance (null stays n/a)
verdicts.py  what the numbers say: absolute (paper profile) or the direction of the gain over seeds
roles.py     the rows: control, baseline, one per method, teacher, each method's gain; labels from the registry
model.py     the report model (data only): this run, the reference run and the paper per cell, evaluation and role
collect.py   stored results: headline metrics, every role's runs per seed, which pairs/seeds/methods have any
health.py    the training health of the encoders behind a report
compose.py   building the model: rows, gains, verdicts and the health gate
document.py  the report as headings, paragraphs, tables and images
render.py    terminal, markdown, HTML and CSV
plots.py     bar plots per student, health curves per training stage
files.py     the report's files and the post-run summary
"""

from harness.report.collect import beside_metric, headline_metric, planner_for_label, profile_cells
from harness.report.compose import build_report
from harness.report.document import document
from harness.report.files import print_cell_reports, write_report_files
from harness.report.model import DEFAULT_TOLERANCE, ProfileReport
from harness.report.render import render_terminal
from harness.report.roles import ENCODER_ROLES
from harness.report.verdicts import (
    ABOVE,
    BELOW,
    CONTRADICTED,
    INCONCLUSIVE,
    OPPOSITE_DIRECTION,
    PENDING,
    REPRODUCED,
    SAME_DIRECTION,
    UNHEALTHY,
    compare,
)

__all__ = [
    "ABOVE",
    "BELOW",
    "CONTRADICTED",
    "DEFAULT_TOLERANCE",
    "INCONCLUSIVE",
    "OPPOSITE_DIRECTION",
    "PENDING",
    "REPRODUCED",
    "ENCODER_ROLES",
    "SAME_DIRECTION",
    "UNHEALTHY",
    "ProfileReport",
    "beside_metric",
    "build_report",
    "compare",
    "document",
    "headline_metric",
    "planner_for_label",
    "print_cell_reports",
    "profile_cells",
    "render_terminal",
    "write_report_files",
]
