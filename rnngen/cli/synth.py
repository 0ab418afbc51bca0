"""`rnngen synth`: write the built-in corpus, whose true entropy is known exactly."""

from __future__ import annotations

import sys

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import RnngenError


@command()
def synth(
    output: str = typer.Option("-", "-o", "--output", help="File to write, or - for stdout."),
    size: str = typer.Option(None, "--size", help="Characters, e.g. 1.5M [default: 1.5M]."),
    lines: int = typer.Option(None, "--lines", help="Number of lines instead of --size."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed, the same text."),
    quiet: bool = args.Quiet,
    json_output: bool = typer.Option(
        False, "--json", help="Print a JSON summary on stdout (needs -o FILE)."
    ),
) -> None:
    """Generate the built-in English-like corpus with long-distance agreement and recall.

    One passage per line. Every random choice has a known probability, so `rnngen eval` on
    this text adds an "oracle" row (the true entropy: the floor no model can beat) and
    subject-verb agreement accuracy by distance. See corpora/README.md.
    """
    from rnngen import api
    from rnngen.cli.output import writing_stdout

    if json_output and output == "-":
        raise RnngenError("--json needs -o FILE (stdout carries the corpus)")
    reporter = Reporter(quiet)
    if output == "-":
        with writing_stdout():
            summary = api.synth(sys.stdout, size=size, lines=lines, seed=seed)
            sys.stdout.flush()
    else:
        summary = api.synth(output, size=size, lines=lines, seed=seed)
    reporter.log(
        f"synth: {summary.lines:,} lines, {summary.chars:,} characters, seed {summary.seed}; "
        f"true entropy {summary.bits_per_char:.4f} bits per character"
        + ("" if output == "-" else f"; wrote {output}")
    )
    if json_output:
        from rnngen.cli.output import print_json

        print_json({"path": output, **vars(summary), "bits_per_char": summary.bits_per_char})
