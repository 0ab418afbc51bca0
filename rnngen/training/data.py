"""The training run's data phase: a corpus (a text file, a directory from rnngen tokenize, or
stdin) tokenized through the cache into what the Trainer reads, with its provenance.

Tokenizing is the slow part of a first run and the same for every later run on the same
text and settings, so it goes through the token cache (corpus/cache.py); under torchrun rank
0 fills the cache while the others wait, then every rank reads it, and the ranks check that
they hold the same data before any of them trains on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rnngen.config import TokenizerConfig
from rnngen.errors import RnngenError

if TYPE_CHECKING:  # distributed imports torch, which `rnngen tokenize` never needs
    from rnngen.corpus.tokenizer import Tokenizer
    from rnngen.training.distributed import Group


@dataclass(frozen=True, eq=False)
class TrainingData:
    tokenizer: object  # rnngen.corpus.tokenizer.Tokenizer
    train_ids: np.ndarray
    valid_ids: np.ndarray
    meta: dict  # the tokenized directory's meta: splits, token counts, sources
    source: dict  # {"corpus": path or "-"} or {"tokenized": directory}
    chars_per_token: float  # of the validation text: loss per token -> bits per character

    @property
    def provenance(self) -> dict:
        """The checkpoint's `provenance` JSON, written through the one typed reader/writer."""
        from rnngen.corpus.provenance import Provenance

        return Provenance.from_training(self.source, self.meta).to_json()


def prepare_data(
    corpus: str,
    *,
    valid: Path | None = None,
    test: Path | None = None,
    valid_frac: float | None = None,
    test_frac: float | None = None,
    kind: str = "bpe",
    vocab_size: int | None = None,
    group: Group | None = None,
    spool_dir: Path = Path("."),
    progress: Callable | None = None,
    tokenizer: Tokenizer | None = None,
) -> TrainingData:
    """Tokenize CORPUS (a text file, a directory from rnngen tokenize, or - for stdin, which
    is spooled into `spool_dir` for the two passes tokenizing needs). `progress()` gives a
    context manager yielding a (done, total) callback for the bytes tokenized.

    A `tokenizer` given (a base checkpoint's, to fine-tune it) is used instead of training
    one, so `kind` and `vocab_size` are unused; a tokenized directory must then have been
    made with that same tokenizer."""
    from rnngen.corpus.cache import cached_tokenize
    from rnngen.corpus.splits import resolve_spans
    from rnngen.corpus.stdin import spool_stdin
    from rnngen.corpus.store import is_tokenized_dir, load_tokenized
    from rnngen.training.distributed import Group

    group = group or Group()
    if corpus == "-" and group.enabled:
        raise RnngenError("under torchrun give CORPUS as a file: every process reads it")
    tokenized = corpus != "-" and is_tokenized_dir(Path(corpus))
    if tokenized:
        options = {"--valid": valid, "--test": test, "--valid-frac": valid_frac,
                   "--test-frac": test_frac}  # fmt: skip
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise RnngenError(
                f"{'/'.join(given)} cannot apply to {corpus!r}: a tokenized directory keeps "
                "the splits rnngen tokenize made; re-run tokenize with them, or train on text"
            )
        corpus_data = load_tokenized(Path(corpus))
        if tokenizer is not None and corpus_data.tokenizer.sha256 != tokenizer.sha256:
            raise RnngenError(
                f"--init-from: {corpus!r} was tokenized with another tokenizer (sha256 "
                f"{corpus_data.tokenizer.sha256[:12]}) than the base checkpoint's "
                f"({tokenizer.sha256[:12]}); give the text itself, which is then tokenized "
                "with the base's"
            )
        source = {"tokenized": str(Path(corpus).resolve())}
    else:
        text = None
        try:
            text = spool_stdin(spool_dir) if corpus == "-" else Path(corpus)
            spans = resolve_spans(text, valid, test, valid_frac, test_frac)

            def tokenize():
                with (progress or contextlib.nullcontext)() as on_progress:
                    config = TokenizerConfig(kind=kind, vocab_size=vocab_size)
                    return cached_tokenize(spans, config, on_progress, tokenizer)

            corpus_data = group.in_turns(tokenize)  # rank 0 fills the cache first
        finally:
            if corpus == "-" and text is not None:
                text.unlink(missing_ok=True)
        source = {"corpus": "-" if corpus == "-" else str(Path(corpus).resolve())}
    splits = corpus_data.meta["splits"]
    if "valid" not in splits:
        raise RnngenError(
            f"the tokenized directory {corpus!r} has no validation split; re-run rnngen "
            "tokenize with --valid FILE or --valid-frac above 0"
            if tokenized
            else "the corpus has no validation split; give --valid FILE"
        )
    train_ids = np.asarray(corpus_data.ids("train"))
    tokenizer = corpus_data.tokenizer
    group.check_same("the training data", f"tokenizer {tokenizer.sha256[:16]}, "
                     f"{len(train_ids)} tokens")  # fmt: skip
    valid_ids = np.asarray(corpus_data.ids("valid"))
    chars_per_token = splits["valid"]["chars"] / max(splits["valid"]["tokens"], 1)
    return TrainingData(tokenizer, train_ids, valid_ids, corpus_data.meta, source,
                        chars_per_token)  # fmt: skip
