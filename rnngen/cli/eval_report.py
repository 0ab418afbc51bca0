"""The work and the table behind `rnngen eval`."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from rnngen.cli.output import print_json, print_table


def compare(reporter, path: Path, model, tokenizer, meta, device, data, train, order, json_out):
    from rnngen.checkpoint import json_field
    from rnngen.checkpoint_data import cached_ngram, heldout_text, training_ids, with_context
    from rnngen.evaluate import Score, model_logprobs
    from rnngen.hardware import resolve_precision

    provenance = json_field(meta, "provenance", {})
    heldout = heldout_text(provenance, tokenizer, data)
    ids = with_context(tokenizer, tokenizer.encode_array(heldout.text))  # (1 + targets,)
    if len(ids) < 2:
        from rnngen.errors import RnngenError

        raise RnngenError(f"{heldout.source} is empty: nothing to evaluate")
    precision = resolve_precision("auto", device)
    started = time.perf_counter()
    rnn_logp = model_logprobs(model, ids, device, precision)  # (targets,)
    reporter.log(f"rnn: scored {len(rnn_logp):,} tokens in {time.perf_counter() - started:.1f}s")

    train_ids, train_source = training_ids(provenance, tokenizer, train)
    started = time.perf_counter()
    ngram, cached = cached_ngram(train_ids, order, tokenizer.vocab_size, tokenizer.sha256)
    unigram, _ = cached_ngram(train_ids, 1, tokenizer.vocab_size, tokenizer.sha256)
    reporter.log(
        f"{order}-gram on {len(train_ids):,} tokens of {train_source}: "
        + ("from cache" if cached else f"built in {time.perf_counter() - started:.1f}s")
    )
    if ngram.stats.fallback_orders:
        reporter.warn(
            f"orders {ngram.stats.fallback_orders} had too little data to estimate discounts; "
            "used KenLM's fallback (0.5, 1, 1.5)"
        )
    ngram_logp, unigram_logp = ngram.logprobs(ids), unigram.logprobs(ids)
    assert len(rnn_logp) == len(ngram_logp) == len(unigram_logp), "rows must share targets"

    config = model.config
    rows = [
        Score(
            f"{config.cell} {config.layers}x{config.hidden_size}",
            -rnn_logp.sum(),
            len(rnn_logp),
            heldout.chars,
            heldout.bytes,
        ),
        Score(
            f"kneser-ney {order}-gram",
            -ngram_logp.sum(),
            len(ngram_logp),
            heldout.chars,
            heldout.bytes,
        ),
        Score("unigram", -unigram_logp.sum(), len(unigram_logp), heldout.chars, heldout.bytes),
    ]
    agreement = _synth_rows(heldout.text, rows, model, tokenizer, ngram, device, precision)
    report = {
        "checkpoint": str(path),
        "data": heldout.source,
        "targets": len(rnn_logp),
        "characters": heldout.chars,
        "bytes": heldout.bytes,
        "rows": [row.as_dict() for row in rows],
        "ngram": {
            "order": order,
            "discounts": ngram.stats.discounts,
            "fallback_orders": ngram.stats.fallback_orders,
        },
    }
    if agreement is not None:
        report["agreement"] = {"items": agreement.counts, "accuracy": agreement.accuracy}
    if json_out:
        print_json(report)
        return
    print_table(
        f"{path.name} on {heldout.source}: {len(rnn_logp):,} tokens, {heldout.chars:,} characters",
        ["model", "tokens", "nats/token", "perplexity", "bits/char", "bits/byte"],
        [[r.name, r.tokens, r.loss, r.ppl, r.bits_per_char, r.bits_per_byte] for r in rows],
        numeric={1, 2, 3, 4, 5},
    )
    if agreement is not None:
        names = list(agreement.accuracy)
        print_table(
            "subject-verb agreement: share of verbs where the right form is more probable",
            ["distance (words)", "items", *names],
            [
                [
                    label,
                    agreement.counts[label],
                    *[_percent(agreement.accuracy[n][label]) for n in names],
                ]
                for label in agreement.counts
            ],
            numeric=set(range(1, 2 + len(names))),
        )


def _synth_rows(text, rows, model, tokenizer, ngram, device, precision):
    """On text from `rnngen synth`: an oracle row in `rows`, and agreement accuracy."""
    from rnngen.evaluate import Score, sequence_logprobs
    from rnngen.synth import looks_generated, oracle
    from rnngen.synth.agreement import agreement_accuracy

    if not looks_generated(text[:20000]):
        return None
    lines = text.splitlines(keepends=True)
    truth = oracle(lines)
    if truth.skipped_lines == 0:
        rows.append(
            Score("oracle (true entropy)", truth.nats, rows[0].tokens, rows[0].chars, rows[0].bytes)
        )
    context = [tokenizer.newline_id]

    def rnn(texts: list[str]) -> np.ndarray:
        sequences = [tokenizer.encode(t) for t in texts]
        return sequence_logprobs(model, sequences, context, device, precision)

    def kn(texts: list[str]) -> np.ndarray:
        return np.array(
            [ngram.logprobs(np.array(context + tokenizer.encode(t))).sum() for t in texts]
        )

    return agreement_accuracy(lines, truth.items, {rows[0].name: rnn, rows[1].name: kn})


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"
