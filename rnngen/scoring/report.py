"""The comparison behind `rnngen eval`, as data: the RNN beside a Kneser-Ney n-gram and a unigram.

Every row scores exactly the same targets: every token of the held-out text (the checkpoint's
test split, else its validation split, or a file given as `data`), each given all the text
before it. The n-gram is trained on exactly the checkpoint's training tokens and cached. On
text from `rnngen synth`, an oracle row (the true entropy) and agreement accuracy by distance
are added. Nothing here prints: `progress` receives the lines a CLI may log as work is done.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.corpus.provenance import Provenance
from rnngen.errors import RnngenError
from rnngen.hardware import resolve_precision
from rnngen.scoring.baseline import CheckpointData, check_order
from rnngen.scoring.dynamic import DynamicConfig, dynamic_logprobs
from rnngen.scoring.logprobs import Score, model_logprobs, sequence_token_logprobs
from rnngen.scoring.mixture import mix_logprobs
from rnngen.scoring.mixture_weight import FIT, MixtureWeight, ids_sha256
from rnngen.scoring.trained_on import build_memory

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
    mixture: MixtureWeight | None = None
    mixture_on_fit_text: bool = False  # the held-out text is the text λ was fit on
    dynamic: DynamicConfig | None = None

    @property
    def oracle(self) -> Score | None:
        return next((row for row in self.rows if row.name == ORACLE), None)

    def keep_for_plot(self) -> Path | None:
        """Keep the report beside the checkpoint as NAME.eval.json (atomically), so that
        `rnngen plot` draws the n-gram and oracle lines without computing them again. Only
        for the checkpoint's own held-out text (another text would give the plot the wrong
        lines): returns the file written, or None. An RnngenError when it cannot be written
        (a read-only folder costs the plot its lines, not the eval its result)."""
        import json

        from rnngen.atomic import write_text

        if not self.data.startswith("held-out "):
            return None
        path = Path(self.checkpoint)
        target = path.with_name(path.name.removesuffix(".safetensors") + ".eval.json")
        write_text(target, json.dumps(self.to_json()) + "\n")
        return target

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
        if self.mixture is not None:
            report["mixture"] = {
                **self.mixture.as_dict(),
                "scored_on_fit_text": self.mixture_on_fit_text,
            }
        if self.dynamic is not None:
            report["dynamic"] = dataclasses.asdict(self.dynamic)
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
    ngram_memory: int | None = None,
    mix: float | str | None = FIT,
    dynamic: DynamicConfig | None = None,
    progress: Callable[[str], None] | None = None,
    found: CheckpointData | None = None,
) -> ComparisonReport:
    """Score the held-out text with the model, the cached n-gram and the unigram; with `mix`
    (a weight, or "fit" for the one fit on the validation split) also their mixture, and
    with `dynamic` the model adapting as it reads (and its mixture). `ngram_memory`: bytes
    for building the n-gram (None: rnngen.ngram.budget.default_memory()). `found`: the
    checkpoint's data when the caller has looked it up already (else it is, once, here)."""
    log = progress or (lambda _: None)
    check_order(ngram_order)
    if found is None:
        found = CheckpointData(provenance, tokenizer, train=train, memory=ngram_memory)
    ids, heldout = found.heldout_ids(data, "evaluate")  # (1 + targets,)
    precision = resolve_precision("auto", device)
    started = time.perf_counter()
    rnn_logp = model_logprobs(model, ids, device, precision)  # (targets,)
    log(f"rnn: scored {len(rnn_logp):,} tokens in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    ngram = found.ngram(ngram_order)
    unigram = found.ngram(1).model
    log(
        f"{ngram_order}-gram on {ngram.tokens:,} tokens of {ngram.source}: "
        + ("from cache" if ngram.cached else f"built in {time.perf_counter() - started:.1f}s")
        + ("" if ngram.cached else f", {build_memory(ngram.model.stats, ngram_memory)}")
    )
    ngram_logp, unigram_logp = ngram.model.logprobs(ids), unigram.logprobs(ids)  # (targets,)
    assert len(rnn_logp) == len(ngram_logp) == len(unigram_logp), "rows must share targets"

    config, chars, nbytes = model.config, heldout.chars, heldout.bytes
    rnn_name, ngram_name = (
        config.describe(),  # "lstm 1x512", "lstm 4x256, highway", "window 8, 1x256"
        f"{ngram_order}-gram",
    )

    def row(name: str, logp: np.ndarray) -> Score:
        assert len(logp) == len(rnn_logp), "rows must share targets"
        return Score(name, -logp.sum(), len(logp), chars, nbytes)

    rows = [row(rnn_name, rnn_logp), row(f"kneser-ney {ngram_name}", ngram_logp),
            row("unigram", unigram_logp)]  # fmt: skip
    weight = None
    if mix is not None:
        try:
            weight = found.mixture(mix, model, ngram, device, precision,
                                   scored=(ids, rnn_logp, ngram_logp))  # fmt: skip
        except RnngenError as e:  # no validation text to fit on: the rest of eval stands
            if mix != FIT:
                raise
            log(f"mixture row left out: {e}")
    if weight is not None:
        log(f"mixture: {weight.describe()}" + (" (cached)" if weight.cached else ""))
        rows.append(
            row(f"{rnn_name} + {ngram_name}", mix_logprobs(rnn_logp, ngram_logp, weight.weight))
        )
    if dynamic is not None:
        started = time.perf_counter()
        dynamic_logp = dynamic_logprobs(model, ids, device, dynamic, precision)  # (targets,)
        seconds = time.perf_counter() - started
        log(f"dynamic evaluation: {len(dynamic_logp):,} tokens in {seconds:.1f}s")
        rows.append(row(f"{rnn_name} dynamic", dynamic_logp))
        if weight is not None:
            rows.append(row(f"{rnn_name} dynamic + {ngram_name}",
                            mix_logprobs(dynamic_logp, ngram_logp, weight.weight)))  # fmt: skip
    agreement = _synth_rows(heldout.text, rows, model, tokenizer, ngram.model, device, precision,
                            weight)  # fmt: skip
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
        mixture=weight,
        mixture_on_fit_text=weight is not None and weight.fit_ids_sha256 == ids_sha256(ids),
        dynamic=dynamic,
    )  # fmt: skip


def _synth_rows(
    text, rows, model, tokenizer, ngram, device, precision, weight: MixtureWeight | None
) -> Agreement | None:
    """On text from `rnngen synth`: an oracle row in `rows`, and agreement accuracy."""
    from rnngen.synth import agreement_accuracy, looks_generated, oracle

    if not looks_generated(text[:20000]):
        return None
    lines = text.splitlines(keepends=True)
    truth = oracle(lines)
    if truth.skipped_lines == 0:
        rows.append(Score(ORACLE, truth.nats, rows[0].tokens, rows[0].chars, rows[0].bytes))
    context = [tokenizer.newline_id]

    def rnn_tokens(texts: list[str]) -> list[np.ndarray]:
        sequences = [tokenizer.encode(t) for t in texts]
        return sequence_token_logprobs(model, sequences, context, device, precision)

    def kn_tokens(texts: list[str]) -> list[np.ndarray]:
        return [ngram.logprobs(np.array(context + tokenizer.encode(t))) for t in texts]

    def total(per_token) -> Callable[[list[str]], np.ndarray]:
        return lambda texts: np.array([logp.sum() for logp in per_token(texts)])  # (len(texts),)

    scorers = {rows[0].name: total(rnn_tokens), rows[1].name: total(kn_tokens)}
    if weight is not None:

        def mixed(texts: list[str]) -> list[np.ndarray]:
            pairs = zip(rnn_tokens(texts), kn_tokens(texts), strict=True)
            return [mix_logprobs(a, b, weight.weight) for a, b in pairs]

        scorers[rows[3].name] = total(mixed)
    result = agreement_accuracy(lines, truth.items, scorers)
    return Agreement(result.counts, result.accuracy)
