"""`rnngen ngram` as data: the Kneser-Ney baseline alone, built on TRAIN and scored on TEST.

Without `words`, the tokens are those of a tokenizer trained on TRAIN (as `rnngen tokenize`
would: `kind`, `vocab_size`), the context crosses line ends and there are no OOVs. With
`words`, what KenLM's lmplz and query compute, to their numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnngen import metrics
from rnngen.errors import RnngenError
from rnngen.scoring.baseline import check_order, memory_budget


@dataclass(frozen=True)
class NGramReport:
    """What `rnngen ngram` reports: `record` is what --json prints."""

    record: dict
    fallback_orders: list[int]  # orders with too little data (KenLM's fallback discounts)
    arpa: Path | None  # the ARPA file written, if one was asked for

    @property
    def spilled_bytes(self) -> int:
        return self.record["spilled_bytes"]

    def spilled(self) -> str | None:
        """What the build spilled to disk, as a size ("1.5 GiB"); None when nothing."""
        from rnngen.ngram.budget import format_size

        return format_size(self.spilled_bytes) if self.spilled_bytes else None

    def to_json(self) -> dict:
        return dict(self.record)


def ngram_report(
    train: Path,
    test: Path,
    *,
    order: int = 5,
    words: bool = False,
    kind: str = "bpe",
    vocab_size: int | None = None,
    arpa: Path | None = None,
    memory: int | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> NGramReport:
    """Build the n-gram on `train` and score `test` (see the module's docstring). `memory`:
    bytes for the build, or a size such as "2G" or "25%" (None: the default budget)."""
    from rnngen.corpus.textio import check_input, make_dir
    from rnngen.ngram.budget import describe_memory

    check_order(order, "--order")
    check_input(train, "training file")
    check_input(test, "test file")
    if arpa is not None:
        if os.path.isdir(arpa) or arpa.name in ("", ".", ".."):
            raise RnngenError(f"--arpa {str(arpa)!r} is a directory; give a file name")
        make_dir(arpa.parent, "--arpa directory")
    if isinstance(memory, str):  # the least any vocabulary needs (ints: once it is known)
        memory = memory_budget(memory)
    (progress or (lambda _: None))(f"n-gram memory {describe_memory(memory)}")
    record = (_words if words else _tokens)(train, test, order, kind, vocab_size, arpa, memory)
    fallback = record.pop("fallback_orders")
    return NGramReport(record, fallback, arpa)


def _words(train: Path, test: Path, order: int, kind, vocab_size, arpa, memory) -> dict:
    from rnngen.corpus.stdin import open_lines
    from rnngen.ngram.kenlm import fit_sentences, score_sentences, write_arpa
    from rnngen.scoring.trained_on import ngram_work_dir

    started = time.perf_counter()
    model, words = fit_sentences(
        open_lines(train, "training file"), order, memory=memory, scratch_dir=ngram_work_dir()
    )
    build_seconds = time.perf_counter() - started
    result = score_sentences(model, words, open_lines(test, "test file"))
    if arpa:
        write_arpa(model, arpa, words)
    return {
        "mode": "words",
        **_stats(model, build_seconds),
        "tokens": result.tokens,
        "oovs": result.oovs,
        "ppl_including_oov": result.ppl_including_oov,
        "ppl_excluding_oov": result.ppl_excluding_oov,
        "logprob_nats": result.total_logprob_nats,
    }


def _tokens(train: Path, test: Path, order: int, kind, vocab_size, arpa, memory) -> dict:
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.splits import sample_chars, sample_text
    from rnngen.corpus.store import encode_to_file
    from rnngen.corpus.textio import Span, is_stream, iter_text, read_text
    from rnngen.corpus.tokenizer import train_tokenizer
    from rnngen.ngram import KneserNey
    from rnngen.ngram.budget import check_memory
    from rnngen.ngram.kenlm import write_arpa
    from rnngen.scoring.trained_on import ngram_work_dir, with_context

    config = TokenizerConfig(kind=kind, vocab_size=vocab_size)
    if is_stream(train):  # read once: a pipe's text is held, then encoded a piece at a time
        text = read_text(train, "training file")
        sample = sample_text(text, config.sample_bytes)
        pieces = _pieces(text)
    else:  # a file is read twice (sample, then encode), never held whole
        span = Span(train, 0, train.stat().st_size)
        sample = sample_chars(span, config.sample_bytes)
        pieces = (text for text, _ in iter_text(span))
    tokenizer = train_tokenizer(sample, config)
    del sample
    if memory is not None:
        check_memory(memory, tokenizer.vocab_size)
    work = ngram_work_dir()
    train_ids = encode_to_file(pieces, tokenizer, work, "rnngen-ngram-ids.bin")
    test_text = read_text(test, "test file")
    started = time.perf_counter()
    model = KneserNey.fit(train_ids, order, tokenizer.vocab_size, memory=memory, scratch_dir=work)
    build_seconds = time.perf_counter() - started
    del train_ids
    logp = model.logprobs(with_context(tokenizer, tokenizer.encode_array(test_text)))
    if arpa:
        write_arpa(
            model,
            arpa,
            [_arpa_name(tokenizer.sp.id_to_piece(i)) for i in range(tokenizer.vocab_size)],
        )
    ppl = metrics.perplexity(-logp.mean()) if len(logp) else float("nan")
    return {
        "mode": "tokens",
        "tokenizer": {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size},
        **_stats(model, build_seconds),
        "tokens": len(logp),
        "oovs": 0,
        "ppl_including_oov": ppl,
        "ppl_excluding_oov": ppl,
        "logprob_nats": float(logp.sum()),
        "bits_per_char": float(metrics.bits(-logp.sum(), len(test_text))),
    }


def _pieces(text: str, size: int = 1 << 22):
    """A held text in pieces of about `size` characters, each ending at a line end."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size) + 1 or len(text)
        yield text[start:end]
        start = end


def _arpa_name(piece: str) -> str:
    """ARPA words cannot hold whitespace: write such characters as <U+XXXX>."""
    return "".join(f"<U+{ord(c):04X}>" if c.isspace() else c for c in piece)


def _stats(model, build_seconds: float) -> dict:
    stats = model.stats
    return {
        "order": stats.order,
        "vocab_size": stats.vocab_size,
        "train_tokens": stats.train_tokens,
        "ngram_counts": stats.ngram_counts,
        "discounts": {
            k: dict(zip(("D1", "D2", "D3+"), v, strict=True)) for k, v in stats.discounts.items()
        },
        "fallback_orders": stats.fallback_orders,
        "build_seconds": round(build_seconds, 3),
        "memory_budget": stats.memory_budget,
        "spilled_bytes": stats.spilled_bytes,
    }
