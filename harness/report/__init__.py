"""Reports from the stored stage results only (nothing is trained, no result is modified).

stats.py     seed statistics (mean, sd, Student-t interval)
paper.py     the paper's numbers and their provenance (null stays n/a)
verdicts.py  what the numbers say: absolute (paper profile) or the direction of the gain over seeds
model.py     the report model: this run, the reference run and the paper per cell, evaluation and role;
             the training health of the encoders behind them
document.py  the report as headings, paragraphs, tables and images
render.py    terminal, markdown, HTML and CSV
plots.py     bar plots per student, health curves per training stage
files.py     the report's files and the post-run summary
"""

from harness.report.document import document
from harness.report.files import print_cell_reports, write_report_files
from harness.report.model import (
    DEFAULT_TOLERANCE,
    ENCODER_ROLES,
    ProfileReport,
    beside_metric,
    build_report,
    headline_metric,
    planner_for_label,
    profile_cells,
)
from harness.report.render import render_terminal
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
