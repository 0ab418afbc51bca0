"""`rnngen info`: what a tokenized directory (or a checkpoint) holds."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import app
from rnngen.cli import corpus_args as args
from rnngen.errors import RnngenError


@app.command()
def info(
    path: Path = typer.Argument(..., help="A directory from rnngen tokenize, or a checkpoint."),
    json_output: bool = args.Json,
) -> None:
    """Show what a tokenized corpus directory or a checkpoint holds."""
    from rnngen.cli.output import print_json, print_table
    from rnngen.data import is_tokenized_dir, load_tokenized

    if not path.exists():
        raise RnngenError(f"{str(path)!r} does not exist")
    if not is_tokenized_dir(path):
        raise RnngenError(f"{str(path)!r} is not a tokenized directory or an rnngen checkpoint")
    meta = load_tokenized(path).meta
    if json_output:
        print_json({"path": str(path), **meta})
        return
    tok = meta["tokenizer"]
    print_table(
        f"{path}: {tok['kind']} tokenizer, {tok['vocab_size']} pieces, sha256 {tok['sha256'][:12]}",
        ["split", "tokens", "characters", "bytes", "source"],
        [[n, s["tokens"], s["chars"], s["bytes"], s["source"]] for n, s in meta["splits"].items()],
        numeric={1, 2, 3},
    )
