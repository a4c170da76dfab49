"""Renderers of the report document: the terminal (rich), markdown, HTML and CSV."""

from __future__ import annotations

import csv
import html
import io
import re

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report.document import Block, Heading, Image, Paragraph, TableBlock
from harness.report.model import EvalReport, PairReport, ProfileReport, Row
from harness.report.roles import GAIN_LABEL_SUFFIX
from harness.report.verdicts import NOT_AVAILABLE
from harness.tables import print_table


def render_terminal(console: Console, blocks: list[Block]) -> None:
    """On a terminal, rich's tables and wrapped text; in a log (not a terminal), Markdown tables and one
    line per paragraph, blocks separated by a blank line, so that nothing is cut or reflowed."""
    in_log = not console.is_terminal
    for block in blocks:
        if isinstance(block, Heading):
            console.print(f"[bold]{escape(block.text)}[/]", soft_wrap=in_log)
        elif isinstance(block, Paragraph):
            console.print(escape(block.text), soft_wrap=in_log)
        elif isinstance(block, TableBlock):
            print_table(console, terminal_table(block))
        else:
            continue
        if in_log:
            console.print()


def terminal_table(block: TableBlock) -> Table:
    """Hidden and all-empty columns (the CI of a single seed) are left out."""
    shown = [
        i
        for i, header in enumerate(block.headers)
        if header not in block.terminal_hidden and any(row[i] for row in block.rows)
    ]
    table = Table(title=block.title)
    for i in shown:
        table.add_column(
            block.headers[i],
            justify="left" if i == 0 or block.headers[i] in ("status", "verdict") else "right",
            no_wrap=i == 0,
        )
    for row in block.rows:
        table.add_row(*(escape(row[i]) for i in shown), style="bold" if row[0].endswith(GAIN_LABEL_SUFFIX) else None)
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
            lines += [
                f"**{block.title}**",
                "",
                "| " + " | ".join(map(_md_cell, block.headers)) + " |",
                "|" + "---|" * len(block.headers),
            ]
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows] + [""]
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({image_prefix}{block.path})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _html_text(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:.5em 0 1em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
    "caption{font-weight:bold;text-align:left;padding:.3em 0}img{max-width:100%}code{overflow-wrap:anywhere}"
)


def render_html(blocks: list[Block], title: str) -> str:
    parts = [
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>'
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, TableBlock):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_html_text(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
            )
            parts.append(
                f"<table><caption>{html.escape(block.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            )
        elif isinstance(block, Image):
            parts.append(f'<p><img src="{html.escape(block.path)}" alt="{html.escape(block.alt)}"></p>')
    return "\n".join(parts) + "\n</body></html>\n"


CSV_FIELDS = [
    "profile",
    "pair",
    "teacher",
    "student",
    "evaluation",
    "metric",
    "role",
    "status",
    "seeds",
    "n",
    "mean",
    "std",
    "ci95_low",
    "ci95_high",
    "values",
    "paper",
    "paper_source",
    "paper_confidence",
    "paper_derived",
    "delta",
    "verdict",
    "beside_metric",
    "beside_mean",
    "reference_mean",
    "reference_n",
    "paper_tables",  # the paper's tables this cell appears in (benchmarks.yaml paper_tables), ';'-joined
]


def _num(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.4f}"


def csv_record(
    report: ProfileReport, pair: PairReport, ev: EvalReport, row: Row, tables: tuple[str, ...] = ()
) -> dict[str, str]:
    stat, paper, interval = row.stat, row.paper, row.stat.ci95 if row.stat else None
    return {
        "profile": report.profile,
        "pair": pair.pair,
        "teacher": pair.teacher,
        "student": pair.student,
        "evaluation": ev.evaluation,
        "metric": ev.metric,
        "role": row.role,
        "status": row.status,
        "seeds": str(len(pair.seeds)),
        "n": str(stat.n if stat else 0),
        "mean": _num(stat.mean if stat else None),
        "std": _num(stat.std if stat else None),
        "ci95_low": _num(interval[0] if interval else None),
        "ci95_high": _num(interval[1] if interval else None),
        "values": ";".join(f"{v:.4f}" for v in stat.values) if stat else "",
        "paper": _num(paper.value if paper else None),
        "paper_source": (paper.source or "") if paper else "",
        "paper_confidence": (paper.confidence or "") if paper else "",
        "paper_derived": str(bool(paper and paper.derived)).lower(),
        "delta": _num(row.delta),
        "verdict": row.verdict,
        "beside_metric": ev.beside[0] if ev.beside else "",
        "beside_mean": _num(row.beside.mean) if row.beside else "",
        "reference_mean": _num(row.reference.mean if row.reference else None),
        "reference_n": str(row.reference.n if row.reference else 0),
        "paper_tables": ";".join(tables),
    }


def render_csv(report: ProfileReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    tables_of: dict[int, tuple[str, ...]] = {}  # a row object -> the paper tables that show it
    for table in report.tables:
        for cell in (cell for table_row in table.rows for cell in table_row.cells if cell.row is not None):
            tables_of[id(cell.row)] = (*tables_of.get(id(cell.row), ()), table.name)
    for pair in report.pairs:
        for ev in pair.evals:
            for row in ev.rows.values():
                writer.writerow(csv_record(report, pair, ev, row, tables_of.get(id(row), ())))
    return buffer.getvalue()
