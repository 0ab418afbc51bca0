"""Options shared by commands: those that read a corpus (tokenize, train, ngram), and the
ones many commands have (--quiet, --json, --threads, --device)."""

from __future__ import annotations

import typer

from rnngen.config import TOKENIZER_KINDS, TokenizerConfig

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
NgramMemory = typer.Option(
    None,
    "--ngram-memory",
    metavar="SIZE",
    help="Memory for building the n-gram: bytes, 512M, 4G or 25% of RAM [default: 1/8 of "
    "RAM, at most half of what is free]. Beyond it the build spills to a scratch folder beside "
    "the n-gram cache; the model is the same.",
)
Quiet = typer.Option(False, "--quiet", "-q", help="No progress or log lines on stderr.")
Json = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
Device = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
Threads = typer.Option(
    None,
    "--threads",
    metavar="N|auto",
    help="CPU threads: N fixes them; auto uses every usable core, and fewer while other "
    "programs keep the cores busy [default: auto, or OMP_NUM_THREADS when set].",
    show_default=False,
)


def tokenizer_config(kind: str, vocab_size: int | None) -> TokenizerConfig:
    return TokenizerConfig(kind=kind, vocab_size=vocab_size)
