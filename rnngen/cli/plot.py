"""`rnngen plot`: learning curves of one or more runs as a PNG, SVG or PDF."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import RnngenError


@command()
def plot(
    runs: list[Path] = typer.Argument(
        None,
        help="Checkpoints (.safetensors) or metrics files (.metrics.jsonl), overlaid "
        "[default: the newest checkpoint in ./checkpoints].",
        show_default=False,
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="Image file; .png, .svg or .pdf [default: NAME.png next to the first run].",
        show_default=False,
    ),
    reference: list[str] = typer.Option(
        None,
        "--reference",
        help="A horizontal line at a known figure, as NAME=BITS_PER_CHAR; repeatable.",
        show_default=False,
    ),
    quiet: bool = args.Quiet,
) -> None:
    """Draw learning curves of one or more runs as a PNG, SVG or PDF.

    Panels: validation bits/char by step (with the training loss) and by training time, the
    gradient norm before clipping (log scale, the clip bound, clipped steps) and the learning
    rate; rollbacks are marked. Prints the path of the image it wrote.

    Runs with different tokenizers compare, since every figure is per character. The n-gram
    and oracle lines appear when `rnngen eval` has cached them next to the checkpoint
    (NAME.eval.json), or from --reference.
    """
    from rnngen import api
    from rnngen.cli.output import write_stdout

    reporter = Reporter(quiet)
    references = dict(_reference(text) for text in reference or [])
    result = api.plot([str(p) for p in runs or []], output, references=references)
    for path, run in zip(result.sources, result.runs, strict=True):
        if run.skipped_lines:
            reporter.warn(
                f"{path}: skipped {run.skipped_lines} line(s) that are not whole records "
                "(a run killed mid-write leaves one)"
            )
    reporter.log(f"plotted {len(result.runs)} run(s)")
    write_stdout(f"{result.path}\n")


def _reference(text: str) -> tuple[str, float]:
    import math

    name, _, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not name or not math.isfinite(number) or number <= 0:
        raise RnngenError(f"--reference wants NAME=BITS_PER_CHAR (e.g. 5-gram=2.1), got {text!r}")
    return name, number
