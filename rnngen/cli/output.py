"""Data on stdout: tables for people, JSON for programs."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def print_table(title: str | None, header: list[str], rows: list[list], numeric=()) -> None:
    """A plain-bordered table on stdout; no colour when stdout is not a terminal."""
    table = Table(title=title, header_style="bold", title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i in numeric else "left")
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or file: never wrap a cell, so each row is one line
        console.width = 250
    console.print(table)
    sys.stdout.flush()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
