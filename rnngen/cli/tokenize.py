"""`rnngen tokenize`: a corpus to a directory of token ids and a SentencePiece model."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter


@command()
def tokenize(
    corpus: str = typer.Argument(..., help="Text file to tokenize, or - for stdin."),
    output: Path = typer.Option(
        None, "-o", "--output", help="Output directory [default: tokenized/CORPUS-NAME]."
    ),
    kind: str = args.Kind,
    vocab_size: int | None = args.VocabSize,
    valid: Path = args.Valid,
    test: Path = args.Test,
    valid_frac: float = args.ValidFrac,
    test_frac: float = args.TestFrac,
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Train a lossless tokenizer on CORPUS and write the token ids of each split.

    Writes OUTPUT/tokenizer.model (a standard SentencePiece model), OUTPUT/{train,valid,test}.bin
    (flat uint16 ids, uint32 for vocabularies over 65536) and OUTPUT/meta.json (tokens,
    characters, bytes and byte-fallback counts per split; tokenizer kind, size, sha256, and
    how many of its sample's characters are pieces).
    """
    from rnngen import api

    reporter = Reporter(quiet)
    with reporter.bytes_progress("tokenize") as progress:
        result = api.tokenize(
            corpus, output, kind=kind, vocab_size=vocab_size, valid=valid, test=test,
            valid_frac=valid_frac, test_frac=test_frac, on_progress=progress,
        )  # fmt: skip
    _report(result, json_output)
    reporter.log(coverage_line(result.meta))
    reporter.log(
        f"wrote {result.path}/ ({result.tokenizer.kind}, {result.tokenizer.vocab_size} pieces)"
    )


def coverage_line(meta: dict) -> str:
    """One line: how many characters are pieces, and what share of the text is spelled in
    byte pieces instead (rare characters left out of a small vocabulary, tabs, unseen ones)."""
    characters = meta["tokenizer"]["characters"]
    splits = meta["splits"].values()
    chars = sum(s["chars"] for s in splits)
    fallback = sum(s["fallback_chars"] for s in splits)
    return (
        f"{characters['pieces']:,} of the {characters['sample']:,} distinct characters of the "
        f"tokenizer's sample are pieces; {fallback:,} of the corpus's {chars:,} characters "
        f"({fallback / max(chars, 1):.2%}) fall back to UTF-8 byte pieces"
    )


def _report(result, json_output: bool) -> None:
    from rnngen.cli.output import print_json, print_table

    if json_output:
        print_json({"path": str(result.path), **result.meta})
        return
    rows = [
        [name, s["tokens"], s["chars"], s["bytes"], s["chars"] / max(s["tokens"], 1)]
        for name, s in result.meta["splits"].items()
    ]
    header = ["split", "tokens", "characters", "bytes", "chars/token"]
    print_table(None, header, rows, numeric={1, 2, 3, 4})
