"""Data on stdout: tables for people, JSON for programs."""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from rnngen.errors import RnngenError


@contextlib.contextmanager
def writing_stdout() -> Iterator[None]:
    """Writes to stdout inside: a full disk or a device error (`> /dev/full`) becomes one
    line `error: cannot write to stdout: ...`. A closed pipe (`| head`) is no error: its
    BrokenPipeError goes on to the CLI's wrapper, which ends the command quietly."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        if e.errno == errno.EPIPE:
            raise
        raise RnngenError(f"cannot write to stdout: {e.strerror or e}") from None


def write_stdout(text: str) -> None:
    """Text to stdout at once, as UTF-8 bytes whatever the locale."""
    with writing_stdout():
        out = getattr(sys.stdout, "buffer", None)
        if out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            sys.stdout.flush()  # anything written through the text layer goes first
            out.write(text.encode("utf-8"))
            out.flush()


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """A closed pipe goes to the CLI's wrapper like any other (rich would exit 1)."""
        self.quiet = True
        raise BrokenPipeError


def print_json(obj) -> None:
    with writing_stdout():
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
        sys.stdout.flush()


def print_table(title: str | None, header: list[str], rows: list[list], numeric=()) -> None:
    """A plain-bordered table on stdout; no colour when stdout is not a terminal."""
    table = Table(title=title, header_style="bold", title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i in numeric else "left")
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    with writing_stdout():
        console = _Console(highlight=False)
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
