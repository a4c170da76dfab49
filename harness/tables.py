"""Tables on the console: rich's boxes on a terminal; plain Markdown where stdout is a file or a pipe
(a CI or Slurm log), so that no cell is ever cut to the console's width with an ellipsis."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text


def plain(cell: RenderableType) -> str:
    """A cell's text without its markup or styles."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(map(_md_cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table_markdown(table: Table) -> str:
    headers = [plain(column.header) for column in table.columns]
    cells = [[plain(cell) for cell in column.cells] for column in table.columns]
    rows = [list(row) for row in zip(*cells, strict=True)] if cells else []
    return markdown_table(plain(table.title) if table.title else "", headers, rows)


def print_table(console: Console, table: Table) -> None:
    if console.is_terminal:
        console.print(table)
    else:
        console.print(
            rich_table_markdown(table).rstrip("\n"), markup=False, highlight=False, soft_wrap=True, emoji=False
        )
