"""A batch of samples whose rows come and go: the one definition of a sampling step.

`SampleBatch` holds any number of rows, each a sample with its own options (temperature,
top-k, top-p, length, stops) and its own `torch.Generator`. `add` runs a prompt once and
gives its state to new rows; `choose` picks every row's next token and decodes it (pieces
of text, and `Done` for rows that end, which leave the batch at once); `advance` runs the
chosen tokens through the network. `rnngen sample -n N` is one `add` of N rows; the server
adds and drops rows between steps (continuous batching). Both use this one step, so a
sample's text cannot depend on which of them made it.

Batch invariance. A row's text must not depend on the other rows: its seed alone decides it.
The randomness is per row (V exponential draws a step from its own generator), and every
operation on the distribution works row by row. The matrix products are the catch: a BLAS
picks its kernel by the number of rows (MKL's fp32 GEMM has one path for 1 row, another for
2-15 and another for 16 and more), and different kernels add in different orders, so the
same row gives different last bits in different batch sizes, and a sample that meets a
near tie goes another way. So every matrix product of a step runs on blocks of exactly
`BLOCK` rows (the last one padded with idle rows): the kernel is then always the same, and
a row's arithmetic is the same wherever it sits and whoever its neighbours are (tested for
fp32 and bf16, 1 and 2 threads). The prompt runs once per `add`, for one row, as before.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnngen.corpus.tokenizer import Tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.sampling.generate import Done, Piece, SampleConfig, SampleText, filter_logits

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Rows per matrix product. 16 keeps MKL's fp32 GEMM on its packed path and a bf16 (AMX)
# product nearly as cheap per row as a batch of 64 (BENCHMARKS.md, "Serving").
BLOCK = 16


@dataclass
class _Row:
    id: int
    text: SampleText
    config: SampleConfig
    generator: torch.Generator | None
    seed: int | None = None
    ngram: _NGramRow | None = None


class _NGramRow:
    """A row that samples a Kneser-Ney n-gram (alone, or mixed with the RNN with weight λ):
    its context is the prompt and the tokens sampled so far (the last order - 1 of them)."""

    def __init__(self, ngram, context: list[int], weight: float | None):
        self.ngram = ngram
        self.keep = max(ngram.order - 1, 1)
        self.context = list(context[-self.keep :])
        self.weight = weight  # None: the n-gram alone
        if weight is not None:
            self.log_weights = (math.log1p(-weight) if weight < 1 else -math.inf,
                                math.log(weight) if weight > 0 else -math.inf)  # fmt: skip

    def logits(self, rnn_logits: torch.Tensor) -> torch.Tensor:
        """(1, V): the n-gram's log-probabilities, or the mixture's: the same arithmetic as
        sample.NGramSource and sample.MixedSource, row by row."""
        dist = self.ngram.distribution(np.asarray(self.context, dtype=np.int64))
        ngram_logp = torch.from_numpy(np.log(dist[None])).float().to(rnn_logits.device)
        if self.weight is None:
            return ngram_logp
        rnn_logp = F.log_softmax(rnn_logits.float(), dim=-1)
        return torch.logaddexp(rnn_logp + self.log_weights[0], ngram_logp + self.log_weights[1])

    def feed(self, token: int) -> None:
        self.context.append(token)
        del self.context[: -self.keep]


class SampleBatch:
    """Rows of samples from one RNNLM at one precision, stepped together. With no model
    (None), rows sample an n-gram alone and no network runs. `ids`: where row ids come from
    (a shared counter when several batches make one sampler)."""

    def __init__(self, model: RNNLM | None, tokenizer: Tokenizer, precision: str = "fp32",
                 ids: Iterator[int] | None = None):  # fmt: skip
        if precision not in DTYPES:
            raise RnngenError(f"unknown precision {precision!r}; use one of {tuple(DTYPES)}")
        self.reference = model  # fp32: runs the prompts
        dtype = DTYPES[precision]
        self.model = (
            model if dtype == torch.float32 or model is None else copy.deepcopy(model).to(dtype)
        )
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.device = torch.device("cpu") if model is None else model.embedding.weight.device
        self.rows: list[_Row] = []
        self.state: list | None = None  # per layer (h, c) or h, each (B, H) in `dtype`
        self.logits: torch.Tensor | None = None  # (B, V) fp32: the next token's, per row
        self.tokens: torch.Tensor | None = None  # (B,) chosen, not yet advanced
        self._ids = itertools.count() if ids is None else ids

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[int]:
        return [row.id for row in self.rows]

    @torch.inference_mode()
    def add(self, prompt: str, seeds: list[int | None], *, ngram=None, mix: float | None = None,
            **options) -> list[int]:  # fmt: skip
        """Rows continuing `prompt` (after a line end), one per seed (None when greedy); their
        ids. `options`: SampleConfig's (temperature, top_k, top_p, max_tokens, max_chars,
        stops), checked as there. `ngram` (a KneserNey): the rows sample that n-gram, alone,
        or with `mix` = λ the mixture (1 - λ) p_rnn + λ p_ngram. The prompt runs once, in
        fp32, for one row. Only between `choose` rounds (after `advance`)."""
        if mix is not None and (ngram is None or not 0 <= mix <= 1):
            raise RnngenError("a mixture needs an n-gram and a weight in [0, 1]")
        if self.reference is None and (ngram is None or mix is not None):
            raise RnngenError("without a network, rows sample an n-gram alone")
        if not seeds:
            raise RnngenError("a sample needs at least one row")
        config = SampleConfig(**options, num_samples=len(seeds))
        if not config.greedy and any(s is None or not 0 <= s < 2**62 for s in seeds):
            raise RnngenError("every sampled row needs a seed between 0 and 2**62 - 1")
        if self.tokens is not None:
            raise RuntimeError("add() between choose() and advance()")
        context = [self.tokenizer.newline_id] + (self.tokenizer.encode(prompt) if prompt else [])
        n = len(seeds)
        if self.reference is None:  # an n-gram alone: logits in name only, no state
            new_state, new_logits = [], torch.zeros(n, self.tokenizer.vocab_size)
        else:
            tokens = torch.tensor([context], dtype=torch.long, device=self.device)  # (1, T)
            logits, state = self.reference(tokens)  # (1, T, V); per layer (1, 1, H) or a pair

            def rows(tensor: torch.Tensor) -> torch.Tensor:  # (1, 1, H) -> (n, H)
                return tensor[0].to(self.dtype).expand(n, -1).contiguous()

            new_state = [tuple(map(rows, s)) if isinstance(s, tuple) else rows(s) for s in state]
            new_logits = logits[0, -1:].float().expand(n, -1)  # (n, V)
        ids = []
        for seed in seeds:
            generator = None
            if not config.greedy:
                generator = torch.Generator(device=self.device).manual_seed(seed)
            row = _Row(next(self._ids), SampleText(self.tokenizer, config), config, generator,
                       None if config.greedy else seed,
                       None if ngram is None else _NGramRow(ngram, context, mix))  # fmt: skip
            self.rows.append(row)
            ids.append(row.id)
        if self.state is None:
            self.state, self.logits = new_state, new_logits.contiguous()
        else:
            self.state = [_cat(old, new) for old, new in zip(self.state, new_state, strict=True)]
            self.logits = torch.cat([self.logits, new_logits])
        return ids

    def drop(self, ids) -> None:
        """Remove rows (a cancelled request); unknown ids are ignored."""
        ids = set(ids)
        keep = [i for i, row in enumerate(self.rows) if row.id not in ids]
        if len(keep) != len(self.rows):
            self._keep(keep)

    def _keep(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.state = self.logits = self.tokens = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.state = [_select(s, index) for s in self.state]
        self.logits = self.logits.index_select(0, index)
        if self.tokens is not None:
            self.tokens = self.tokens.index_select(0, index)

    @torch.inference_mode()
    def choose(self) -> list[Piece | Done]:
        """Every row's next token, decoded: Piece(row id, text) for new text, Done(row id,
        ...) for a row that ends (and leaves the batch). Then `advance` before the next."""
        if not self.rows:
            return []
        logits = self.logits
        if any(row.ngram for row in self.rows):
            logits = logits.clone()
            for i, row in enumerate(self.rows):
                if row.ngram:
                    logits[i] = row.ngram.logits(self.logits[i : i + 1])[0]
        tokens = choose_tokens(logits, self.rows)  # (B,)
        events: list[Piece | Done] = []
        keep = []
        for i, (row, token) in enumerate(zip(self.rows, tokens.tolist(), strict=True)):
            if row.ngram:
                row.ngram.feed(token)
            text = row.text.add(token)
            if text:
                events.append(Piece(row.id, text))
            if row.text.reason:
                t = row.text
                events.append(Done(row.id, t.text, t.tokens, t.reason, t.dropped_bytes, row.seed))
            else:
                keep.append(i)
        self.tokens = tokens
        if len(keep) != len(self.rows):
            self._keep(keep)
        return events

    @torch.inference_mode()
    def advance(self) -> None:
        """Run the chosen tokens through the network: every row's next logits."""
        if self.tokens is None:
            return
        tokens, self.tokens = self.tokens, None
        if self.model is None:
            return  # n-gram rows: their logits come from their contexts
        batch = tokens.shape[0]
        padded = -(-batch // BLOCK) * BLOCK
        if padded != batch:
            tokens = F.pad(tokens, (0, padded - batch))
            state = [_pad(s, padded - batch) for s in self.state]
        else:
            state = self.state
        blocks = [self._block(tokens[i : i + BLOCK], [_slice(s, i) for s in state])
                  for i in range(0, padded, BLOCK)]  # fmt: skip
        self.logits = torch.cat([b[0] for b in blocks])[:batch]
        layers = zip(*(b[1] for b in blocks), strict=True)
        self.state = [_slice(_catn(parts), 0, batch) for parts in layers]

    def _block(self, tokens: torch.Tensor, state: list):
        """One step of BLOCK rows: tokens (BLOCK,) -> logits (BLOCK, V) fp32, new state
        (`RNNLM.step`: the one definition of a step, which the sampler and the ONNX export
        also run)."""
        logits, new_state = self.model.step(tokens, state)  # (BLOCK, V)
        return logits.float(), new_state


def choose_tokens(logits: torch.Tensor, rows: list[_Row]) -> torch.Tensor:
    """Each row's token from logits (B, V) under its own options: greedy rows take the
    likeliest; the others temperature, then top-k, then top-p, then the exponential race
    (Gumbel-max: argmax p / E, E ~ Exp(1), is token t with probability p[t]) with V draws
    from the row's own generator. Every operation is row by row."""
    tokens = logits.argmax(dim=-1)  # (B,): the greedy rows' answer
    sampled = [i for i, row in enumerate(rows) if not row.config.greedy]
    if not sampled:
        return tokens
    index = torch.tensor(sampled, dtype=torch.long, device=logits.device)
    part = logits.index_select(0, index) if len(sampled) < len(rows) else logits  # (S, V)
    # Shift the largest logit to 0 and keep the temperature a normal number of the logits'
    # dtype: a tiny one (1e-45, which is 0 in fp32) then sends the others towards -inf
    # (greedy, ties shared) where dividing as is gives inf/inf or 0/0, NaN, empty text.
    tiny = torch.finfo(part.dtype).tiny
    temperature = torch.tensor([[max(rows[i].config.temperature, tiny)] for i in sampled],
                               dtype=part.dtype, device=part.device)  # fmt: skip
    part = (part - part.max(dim=-1, keepdim=True).values) / temperature  # (S, V)
    filters: dict[tuple[int, float], list[int]] = {}
    for j, i in enumerate(sampled):
        c = rows[i].config
        if (0 < c.top_k < part.shape[-1]) or c.top_p < 1:
            filters.setdefault((c.top_k, c.top_p), []).append(j)
    for (top_k, top_p), members in filters.items():
        which = torch.tensor(members, dtype=torch.long, device=part.device)
        part = part.index_copy(0, which, filter_logits(part[which], top_k, top_p))
    probs = part.softmax(dim=-1)  # (S, V)
    noise = torch.empty_like(probs)
    for row_noise, i in zip(noise, sampled, strict=True):
        row_noise.exponential_(generator=rows[i].generator)
    noise.clamp_(min=torch.finfo(noise.dtype).tiny)  # never 0/0
    chosen = (probs / noise).argmax(dim=-1)  # (S,)
    return tokens.index_copy(0, index, chosen)


def _cat(a, b):
    return (
        tuple(_cat(x, y) for x, y in zip(a, b, strict=True))
        if isinstance(a, tuple)
        else (torch.cat([a, b]))
    )


def _catn(parts):
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))
    return torch.cat(parts)


def _select(s, index):
    return (
        tuple(t.index_select(0, index) for t in s)
        if isinstance(s, tuple)
        else (s.index_select(0, index))
    )


def _pad(s, extra: int):
    if isinstance(s, tuple):
        return tuple(_pad(t, extra) for t in s)
    return F.pad(s, (0, 0, 0, extra))


def _slice(s, start: int, stop: int | None = None):
    stop = start + BLOCK if stop is None else stop
    return tuple(t[start:stop] for t in s) if isinstance(s, tuple) else s[start:stop]
