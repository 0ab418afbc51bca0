"""Text in, ids out: `tokenize` (what `rnngen tokenize` does)."""

from __future__ import annotations

from pathlib import Path

from rnngen.arguments import checked


@checked(rename={"-o": "output"})
def tokenize(
    corpus: str | Path,
    output: str | Path | None = None,
    *,
    kind: str = "bpe",
    vocab_size: int | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    valid_frac: float | None = None,
    test_frac: float | None = None,
):
    """What `rnngen tokenize` does: a lossless tokenizer trained on `corpus`, and the ids of
    each split written to `output` (default tokenized/CORPUS-NAME). Returns the
    TokenizedCorpus (its meta: splits with tokens, characters and bytes)."""
    from rnngen.config import TokenizerConfig
    from rnngen.data import tokenize_corpus
    from rnngen.textio import make_dir
    from rnngen.train_data import resolve_spans

    corpus = Path(corpus)
    output = Path(output) if output is not None else Path("tokenized") / corpus.stem
    make_dir(output.parent, "output directory")
    spans = resolve_spans(
        corpus, Path(valid) if valid else None, Path(test) if test else None, valid_frac, test_frac
    )
    config = TokenizerConfig(kind=kind, vocab_size=vocab_size)
    return tokenize_corpus(spans, output, config, None, {"corpus": str(corpus)})
