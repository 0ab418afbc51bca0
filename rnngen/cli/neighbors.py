"""`rnngen neighbors`: a word's nearest pieces in a model's input embedding."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.errors import RnngenError


@command()
def neighbors(
    checkpoint: Path = typer.Argument(..., help="A .safetensors checkpoint."),
    words: list[str] = typer.Argument(..., help="Words to look up."),
    k: int = typer.Option(10, "-k", help="Neighbours per word."),
    json_output: bool = args.Json,
) -> None:
    """The K nearest pieces of each WORD by cosine similarity in CHECKPOINT's input
    embedding (its word vectors). A word is looked up as it reads inside a sentence (after
    a space); one spelled in several pieces gets the mean of their vectors, and the output
    says so. Byte pieces are never neighbours; a word spelled only in bytes is an error.
    """
    import rnngen.api as api

    if not words:
        raise RnngenError("give at least one WORD")
    results = api.neighbors(checkpoint, words, k=k)
    if json_output:
        from rnngen.cli.output import print_json

        for result in results:
            print_json(result.as_dict())
        return
    from rich.markup import escape

    from rnngen.cli.output import print_table, write_stdout

    for result in results:
        spelled = " ".join(result.pieces)
        title = f"{result.word}: " + (
            f"the mean of its {len(result.pieces)} pieces {spelled}" if result.averaged
            else f"piece {spelled}"
        )  # fmt: skip
        rows = [[rank, escape(n.piece), n.similarity] for rank, n in enumerate(result.neighbors, 1)]
        write_stdout(title + "\n")  # a line of its own: a table's title would wrap
        print_table(None, ["#", "piece", "cosine"], rows, numeric={0, 2})
