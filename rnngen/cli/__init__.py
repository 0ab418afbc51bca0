"""The `rnngen` command line: a thin Typer app over the library.

The CLI owns the terminal and every file path; the library never prints. Command modules
import their heavy dependencies (torch, numpy, sentencepiece) inside the command bodies, so
`rnngen --help` and shell completion never pay for importing torch.

Exit codes: 0 success, 1 a user-fixable error (`error: ...` on stderr, one line, no
traceback), 2 a usage error (Typer's, or options that contradict each other), 130
interrupted. A closed stdout (`| head`) ends the command quietly.
"""

from __future__ import annotations

import errno
import functools
import importlib
import inspect
import os
import sys

import typer

from rnngen.errors import RnngenError, UsageError, cli_caller


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
            with cli_caller():  # the library's errors name the options the user typed
                return function(*args, **kwargs)
        except RnngenError as e:
            message = " ".join(str(e).split("\n"))
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(2 if isinstance(e, UsageError) else 1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except OSError as e:
            # A last net: a file the command's own checks did not foresee (a disk error, a
            # file removed under it). Still one line, naming the file.
            if e.errno == errno.EPIPE:
                _silence_stdout()
                raise typer.Exit(0) from None
            where = f" {e.filename!r}" if e.filename else ""
            typer.echo(f"error: cannot access{where}: {e.strerror or e}", err=True)
            raise typer.Exit(1) from None

    return run


def command(name: str | None = None):
    """`@app.command()`, with the error handling of `guarded`.

    Typer checks that a `Path` parameter's file is readable before the command runs, and
    answers a usage error (exit 2) for an unreadable one; rnngen's own checks read every
    file the command needs and say `error: cannot read ...` (exit 1), as for any other file
    problem, so that check is turned off here for every command's parameters."""

    def register(function):
        for parameter in inspect.signature(function).parameters.values():
            if hasattr(parameter.default, "readable"):  # typer.Option / typer.Argument
                parameter.default.readable = False
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
        from rnngen.api import __version__

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
for _command in (
    "synth", "tokenize", "train", "eval", "sample", "serve", "ngram", "info", "plot",
    "gradients", "neighbors", "export",
):  # fmt: skip
    importlib.import_module(f"rnngen.cli.{_command}")


def _fd_identity(fd_or_path) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd_or_path) if isinstance(fd_or_path, int) else os.stat(fd_or_path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def main() -> None:
    stdout, stdout_file = sys.stdout, _fd_identity(1)
    try:
        app(prog_name="rnngen")
    except SystemExit as e:
        # A closed pipe met outside a command's own writes (`rnngen --help | head -c 1`) is
        # answered with exit 1 by typer (which swaps sys.stdout for a wrapper that swallows
        # the last flush) and by rich (which points stdout at /dev/null). Neither is an
        # error: the reader had all it wanted.
        devnull = _fd_identity(os.devnull)
        pipe_closed = sys.stdout is not stdout or (
            stdout_file != devnull and _fd_identity(1) == devnull
        )
        if e.code == 1 and pipe_closed:
            _silence_stdout()
            raise SystemExit(0) from None
        raise
