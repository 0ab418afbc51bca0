"""The one sampling engine: `Sampler` (rows of samples at their own precisions) and
`generate` (N samples of one prompt), used alike by `rnngen sample`, the Python API and
`rnngen serve`, so that a seed gives the same text whichever of them runs it.

A `Sampler` holds one `SampleBatch` (rnngen/stepper.py: rows stepped together, each a
sample with its own options and generator) per precision its rows run at, chosen per row by
the one rule (`sample.sampling_precision`: with `auto`, greedy rows fp32, sampled rows bf16
on CPUs with native bf16). The server adds and drops rows between steps (continuous
batching); `generate` is one `add` of N rows stepped until they end. A row's text depends on
its seed, options and precision only: every batch runs its matrix products on blocks of 16
rows (stepper.py), so it is the same alone, in `-n 16`, or beside a server's other streams.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from rnngen.corpus.tokenizer import Tokenizer
from rnngen.sampling.batch import SampleBatch
from rnngen.sampling.generate import Done, Piece, SampleConfig, sampling_precision
from rnngen.threads import timed


class Sampler:
    """Rows of samples from one model (or an n-gram alone: `model` None), each at the
    precision `precision` gives it (`auto`: by its temperature), stepped a batch per
    precision. The interface of `SampleBatch`: add, choose, advance, drop, len, ids."""

    def __init__(self, model, tokenizer: Tokenizer, precision: str = "auto", device=None):
        self.model, self.tokenizer, self.precision = model, tokenizer, precision
        if device is None:
            import torch

            device = torch.device("cpu") if model is None else model.embedding.weight.device
        self.device = device
        self.batches: dict[str, SampleBatch] = {}  # precision -> its rows
        self._ids = itertools.count()  # row ids unique across the batches

    def precision_of(self, temperature: float) -> str:
        """The precision a row of this temperature runs at (fp32 for an n-gram alone)."""
        if self.model is None:
            return "fp32"
        return sampling_precision(self.precision, self.device, temperature)

    def __len__(self) -> int:
        return sum(len(batch) for batch in self.batches.values())

    @property
    def ids(self) -> list[int]:
        return [i for batch in self.batches.values() for i in batch.ids]

    def add(self, prompt: str, seeds: list[int | None], **options) -> list[int]:
        """Rows continuing `prompt`, one per seed: SampleBatch.add's arguments."""
        precision = self.precision_of(options.get("temperature", 1.0))
        batch = self.batches.get(precision)
        if batch is None:
            batch = SampleBatch(self.model, self.tokenizer, precision, ids=self._ids)
            self.batches[precision] = batch
        return batch.add(prompt, seeds, **options)

    def choose(self) -> list[Piece | Done]:
        return [event for batch in self.batches.values() for event in batch.choose()]

    def advance(self) -> None:
        for batch in self.batches.values():
            with timed(len(batch), "sample"):
                batch.advance()

    def drop(self, ids) -> None:
        ids = set(ids)
        for batch in self.batches.values():
            batch.drop(ids)


def generate(model, tokenizer: Tokenizer, prompt: str = "", config: SampleConfig | None = None,
             precision: str = "auto", ngram=None, mix: float | None = None,
             ) -> Iterator[Piece | Done]:  # fmt: skip
    """Continue `prompt` config.num_samples times: Piece(i, text) as sample i's tokens decode
    to text, Done(i, ...) when it ends. `model` an RNNLM (None: `ngram` alone); `ngram` a
    KneserNey, sampled alone, or with `mix` = λ the mixture (1 - λ) p_rnn + λ p_ngram.
    Sample i draws from a generator seeded config.seed + i. Closing the generator early is
    fine."""
    config = config or SampleConfig()
    sampler = Sampler(model, tokenizer, precision)
    options = {"temperature": config.temperature, "top_k": config.top_k, "top_p": config.top_p,
               "max_tokens": config.max_tokens, "max_chars": config.max_chars,
               "stops": config.stops}  # fmt: skip
    seeds = [config.seed_of(i) for i in range(config.num_samples)]
    ids = sampler.add(prompt, seeds, ngram=ngram, mix=mix, **options)
    index = {row_id: i for i, row_id in enumerate(ids)}
    while len(sampler):
        for event in sampler.choose():
            if isinstance(event, Piece):
                yield Piece(index[event.index], event.text)
            else:
                yield Done(index[event.index], event.text, event.tokens, event.reason,
                           event.dropped_bytes, event.seed)  # fmt: skip
        sampler.advance()
