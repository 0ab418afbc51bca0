"""The `rnngen` command line: a thin Typer app over the library.

The CLI owns the terminal and every file path; the library never prints. Command modules
import their heavy dependencies (torch, numpy, sentencepiece) inside the command bodies, so
`rnngen --help` and shell completion never pay for importing torch.

Exit codes: 0 success, 1 a user-fixable error (`error: ...` on stderr, one line, no
traceback), 2 a usage error (Typer's), 130 interrupted. A closed stdout (`| head`) ends the
command quietly.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

import typer

from rnngen import __version__
from rnngen.errors import RnngenError


def _silence_stdout() -> None:
    """After the reader of stdout went away, point stdout at /dev/null so the interpreter's
    final flush cannot raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def guarded(function):
    """Turn the library's failures into the exit codes above, the same for every command.

    Written against typer's public API only (typer.Exit, typer.echo): typer 0.29 stopped
    depending on click, so a subclass of click's (or typer's internal) group class would tie
    the CLI to one typer release.
    """

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except RnngenError as e:
            message = " ".join(str(e).split("\n"))
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None

    return run


def command(name: str | None = None):
    """`@app.command()`, with the error handling of `guarded`."""

    def register(function):
        app.command(name)(guarded(function))
        return function

    return register


app = typer.Typer(
    help="Recurrent language models from the command line: tokenize, train, eval, sample.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # paragraphs reflow; "[default: ...]" stays literal text
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rnngen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Recurrent language models from the command line.

    stdout carries data only (text, tables, JSON); progress and logs go to stderr.
    """


# Each module adds its command(s) to `app` when imported; this order is the order of --help,
# the order a user meets them in.
for _command in ("synth", "tokenize", "train", "eval", "sample", "ngram", "info"):
    importlib.import_module(f"rnngen.cli.{_command}")


def main() -> None:
    app(prog_name="rnngen")
