"""Options shared by commands that read a corpus (tokenize, train, ngram)."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.config import TOKENIZER_KINDS, TokenizerConfig
from rnngen.errors import RnngenError

KIND_HELP = f"Tokenizer: {', '.join(TOKENIZER_KINDS)} (SentencePiece model types)."
VALID_HELP = "Validation text; without it the last lines of CORPUS are held out."
TEST_HELP = "Test text; without it the last lines of CORPUS are held out (see --test-frac)."

Kind = typer.Option("bpe", "--kind", help=KIND_HELP)
VocabSize = typer.Option(
    None,
    "--vocab-size",
    help="Exact vocabulary size for bpe, unigram, word "
    "[default: up to 1024, fewer for small corpora].",
)
Valid = typer.Option(None, "--valid", help=VALID_HELP)
Test = typer.Option(None, "--test", help=TEST_HELP)
ValidFrac = typer.Option(
    None, "--valid-frac", help="Share of CORPUS held out for validation [default: 0.05]."
)
TestFrac = typer.Option(
    None,
    "--test-frac",
    help="Share of CORPUS held out for test [default: 0.05, or 0 when --valid is given].",
)
Quiet = typer.Option(False, "--quiet", "-q", help="No progress or log lines on stderr.")
Json = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def resolve_spans(
    corpus: Path,
    valid: Path | None,
    test: Path | None,
    valid_frac: float | None,
    test_frac: float | None,
):
    """The byte spans of train/valid/test: given files, else the corpus's last lines."""
    from rnngen.textio import Span, check_file, split_tail

    # Checked before resolve(), which would raise on a symlink loop; resolved so that
    # provenance works from any directory.
    corpus = check_file(corpus).resolve()
    valid = check_file(valid, "validation file").resolve() if valid is not None else None
    test = check_file(test, "test file").resolve() if test is not None else None
    if valid_frac is None:
        valid_frac = 0.0 if valid is not None else 0.05
    if test_frac is None:
        test_frac = 0.0 if (test is not None or valid is not None) else 0.05
    for name, value in (("--valid-frac", valid_frac), ("--test-frac", test_frac)):
        if not 0.0 <= value < 0.5:
            raise RnngenError(f"{name} must be at least 0 and below 0.5, got {value}")
    spans = split_tail(
        corpus, 0.0 if valid is not None else valid_frac, 0.0 if test is not None else test_frac
    )
    if valid is not None:
        spans["valid"] = Span(valid, 0, valid.stat().st_size)
    if test is not None:
        spans["test"] = Span(test, 0, test.stat().st_size)
    order = ["train", "valid", "test"]
    return {name: spans[name] for name in order if name in spans}


def tokenizer_config(kind: str, vocab_size: int | None) -> TokenizerConfig:
    return TokenizerConfig(kind=kind, vocab_size=vocab_size)
