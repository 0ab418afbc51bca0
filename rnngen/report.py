"""The comparison behind `rnngen eval`, as data: the RNN beside a Kneser-Ney n-gram and a unigram.

Every row scores exactly the same targets: every token of the held-out text (the checkpoint's
test split, else its validation split, or a file given as `data`), each given all the text
before it. The n-gram is trained on exactly the checkpoint's training tokens and cached. On
text from `rnngen synth`, an oracle row (the true entropy) and agreement accuracy by distance
are added. Nothing here prints: `progress` receives the lines a CLI may log as work is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.checkpoint_data import heldout_text, training_ngram, with_context
from rnngen.errors import RnngenError
from rnngen.evaluate import Score, model_logprobs, sequence_logprobs
from rnngen.hardware import resolve_precision
from rnngen.provenance import Provenance

ORACLE = "oracle (true entropy)"


@dataclass(frozen=True)
class NGramInfo:
    """The n-gram baseline of a report: its order and estimates, and what it was built on."""

    order: int
    discounts: dict
    fallback_orders: list[int]  # orders with too little data, given KenLM's fallback discounts
    training_tokens: int
    source: str
    cached: bool


@dataclass(frozen=True)
class Agreement:
    """Share of verbs where the right form is more probable, by distance, for each model."""

    items: dict[str, int]  # distance label -> number of verbs
    accuracy: dict[str, dict[str, float]]  # model name -> distance label -> share (nan: none)


@dataclass(frozen=True)
class ComparisonReport:
    checkpoint: str
    data: str  # "held-out test split", "held-out valid split", or the --data path
    targets: int
    characters: int
    bytes: int
    rows: list[Score]  # the RNN, the n-gram, the unigram, then the oracle on synth text
    ngram: NGramInfo
    agreement: Agreement | None = None

    @property
    def oracle(self) -> Score | None:
        return next((row for row in self.rows if row.name == ORACLE), None)

    def to_json(self) -> dict:
        """What `rnngen eval --json` prints."""
        report = {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "targets": self.targets,
            "characters": self.characters,
            "bytes": self.bytes,
            "rows": [row.as_dict() for row in self.rows],
            "ngram": {
                "order": self.ngram.order,
                "discounts": self.ngram.discounts,
                "fallback_orders": self.ngram.fallback_orders,
            },
        }
        if self.agreement is not None:
            report["agreement"] = {
                "items": self.agreement.items,
                "accuracy": self.agreement.accuracy,
            }
        return report


def compare_model(
    model,
    tokenizer,
    provenance: Provenance | None,
    device,
    *,
    checkpoint: str,
    data: Path | None = None,
    train: Path | None = None,
    ngram_order: int = 5,
    progress: Callable[[str], None] | None = None,
) -> ComparisonReport:
    """Score the held-out text with the model, the cached n-gram and the unigram."""
    log = progress or (lambda _: None)
    heldout = heldout_text(provenance, tokenizer, data)
    ids = with_context(tokenizer, tokenizer.encode_array(heldout.text))  # (1 + targets,)
    if len(ids) < 2:
        raise RnngenError(f"{heldout.source} is empty: nothing to evaluate")
    precision = resolve_precision("auto", device)
    started = time.perf_counter()
    rnn_logp = model_logprobs(model, ids, device, precision)  # (targets,)
    log(f"rnn: scored {len(rnn_logp):,} tokens in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    ngram = training_ngram(provenance, tokenizer, ngram_order, train)
    unigram = training_ngram(provenance, tokenizer, 1, train).model
    log(
        f"{ngram_order}-gram on {ngram.tokens:,} tokens of {ngram.source}: "
        + ("from cache" if ngram.cached else f"built in {time.perf_counter() - started:.1f}s")
    )
    ngram_logp, unigram_logp = ngram.model.logprobs(ids), unigram.logprobs(ids)  # (targets,)
    assert len(rnn_logp) == len(ngram_logp) == len(unigram_logp), "rows must share targets"

    config, chars, nbytes = model.config, heldout.chars, heldout.bytes
    rows = [
        Score(f"{config.cell} {config.layers}x{config.hidden_size}", -rnn_logp.sum(),
              len(rnn_logp), chars, nbytes),
        Score(f"kneser-ney {ngram_order}-gram", -ngram_logp.sum(), len(ngram_logp), chars,
              nbytes),
        Score("unigram", -unigram_logp.sum(), len(unigram_logp), chars, nbytes),
    ]  # fmt: skip
    agreement = _synth_rows(heldout.text, rows, model, tokenizer, ngram.model, device, precision)
    stats = ngram.model.stats
    return ComparisonReport(
        checkpoint=checkpoint,
        data=heldout.source,
        targets=len(rnn_logp),
        characters=chars,
        bytes=nbytes,
        rows=rows,
        ngram=NGramInfo(ngram_order, stats.discounts, stats.fallback_orders, ngram.tokens,
                        ngram.source, ngram.cached),
        agreement=agreement,
    )  # fmt: skip


def _synth_rows(text, rows, model, tokenizer, ngram, device, precision) -> Agreement | None:
    """On text from `rnngen synth`: an oracle row in `rows`, and agreement accuracy."""
    from rnngen.synth import agreement_accuracy, looks_generated, oracle

    if not looks_generated(text[:20000]):
        return None
    lines = text.splitlines(keepends=True)
    truth = oracle(lines)
    if truth.skipped_lines == 0:
        rows.append(Score(ORACLE, truth.nats, rows[0].tokens, rows[0].chars, rows[0].bytes))
    context = [tokenizer.newline_id]

    def rnn(texts: list[str]) -> np.ndarray:
        sequences = [tokenizer.encode(t) for t in texts]
        return sequence_logprobs(model, sequences, context, device, precision)  # (len(texts),)

    def kn(texts: list[str]) -> np.ndarray:
        return np.array(
            [ngram.logprobs(np.array(context + tokenizer.encode(t))).sum() for t in texts]
        )  # (len(texts),)

    result = agreement_accuracy(lines, truth.items, {rows[0].name: rnn, rows[1].name: kn})
    return Agreement(result.counts, result.accuracy)
