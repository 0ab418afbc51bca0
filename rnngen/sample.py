"""Sampling: text from a model, streamed piece by piece, reproducible from a seed.

`generate` yields `Piece(index, text)` events as tokens decode to text and `Done(index, ...)`
when a sample ends; it never prints. All samples run as one batch (B = num_samples):

* The prompt, after one newline token (so it starts a line, as in the training text; with no
  prompt the newline alone), is fed through the network once, for one row; its state is
  then copied to the B rows.
* Each step then runs one token per row through the model's own step (`RNNLM.step`: the
  recurrent cells directly, `torch.lstm_cell` & co. on the model's own weights; the window
  model's window). `nn.LSTM` on a CPU builds a oneDNN RNN primitive on every call, which
  costs several times the arithmetic of a single step.
* Choosing a token: temperature, then top-k, then top-p (nucleus), all on (B, V) tensors.
  Sample i draws its randomness from its own `torch.Generator`, seeded `seed + i`, always
  V numbers a step whatever B is; so sample i of a batch is the sample `seed + i` gives
  alone, up to floating-point rounding between batch shapes. Temperature 0 is greedy.

The model may also be a `KneserNey` n-gram (the baseline), sampled the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.threads import timed
from rnngen.tokenizer import Tokenizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class SampleConfig:
    temperature: float = 1.0  # 0: greedy, always the likeliest token (the seed is unused)
    top_k: int = 0  # keep only the k likeliest tokens; 0 keeps all
    top_p: float = 1.0  # keep the smallest set of tokens whose probability reaches p
    max_tokens: int = 500  # generated tokens per sample (the prompt does not count)
    max_chars: int | None = None  # end a sample after this many generated characters
    stops: tuple[str, ...] = ()  # end a sample once its text contains one (kept in the text)
    num_samples: int = 1
    seed: int = 0  # sample i draws from a generator seeded seed + i

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise RnngenError(f"--temp must be 0 (greedy) or more, got {self.temperature}")
        if self.top_k < 0:
            raise RnngenError(f"--top-k must be 0 (off) or more, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise RnngenError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise RnngenError(f"--length must be at least 1 token, got {self.max_tokens}")
        if self.max_chars is not None and self.max_chars < 1:
            raise RnngenError(f"--chars must be at least 1, got {self.max_chars}")
        if self.num_samples < 1:
            raise RnngenError(f"--num-samples must be at least 1, got {self.num_samples}")
        if not 0 <= self.seed < 2**62:
            raise RnngenError(f"--seed must be between 0 and 2**62 - 1, got {self.seed}")
        if any(not stop for stop in self.stops):
            raise RnngenError("--stop needs a non-empty string")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def seed_of(self, index: int) -> int | None:
        """The seed of sample `index` (None when greedy: there is no randomness)."""
        return None if self.greedy else self.seed + index


@dataclass(frozen=True)
class Piece:
    """Newly decoded text of sample `index`."""

    index: int
    text: str


@dataclass(frozen=True)
class Done:
    """Sample `index` ended: its generated text, token count, and why (length/chars/stop).

    `dropped_bytes`: a sample that reaches its length inside a character spelled in byte
    pieces ends with that character incomplete; its bytes are left out of the text.
    """

    index: int
    text: str
    tokens: int
    reason: str
    dropped_bytes: int = 0


def check_precision(precision: str) -> None:
    if precision not in DTYPES:
        raise RnngenError(f"unknown precision {precision!r}; use one of {tuple(DTYPES)}")


def generate(
    model,
    tokenizer: Tokenizer,
    prompt: str = "",
    config: SampleConfig | None = None,
    precision: str = "fp32",
    mixture: tuple | None = None,
) -> Iterator[Piece | Done]:
    """Continue `prompt` num_samples times, on the model's device.

    `model` is an RNNLM or a KneserNey. `precision` bf16/fp16 runs a converted copy of the
    RNN's weights (fp32 stays the reference; bf16 is about twice as fast on CPUs with bf16
    units). `mixture` (a KneserNey, λ) samples the RNN mixed with that n-gram, (1 - λ) p_rnn
    + λ p_ngram, the n-gram's context being the prompt and the tokens sampled so far.
    Stopping early (closing the generator) is fine.
    """
    config = config or SampleConfig()
    check_precision(precision)
    # The prompt starts a line, as it would in the training text.
    context = [tokenizer.newline_id] + (tokenizer.encode(prompt) if prompt else [])
    batch = config.num_samples
    if isinstance(model, RNNLM) and mixture is not None:
        ngram, weight = mixture
        source = MixedSource(RNNSource(model, batch, DTYPES[precision]),
                             NGramSource(ngram, batch), weight)  # fmt: skip
    elif isinstance(model, RNNLM):
        source = RNNSource(model, batch, DTYPES[precision])
    else:
        source = NGramSource(model, batch)
    samples = [SampleText(tokenizer, config) for _ in range(batch)]
    logits = source.start(context)  # (B, V)
    choose = TokenChooser(config, logits.shape[-1], logits.device)
    while True:
        tokens = choose(logits)  # (B,)
        for index, (sample, token) in enumerate(zip(samples, tokens.tolist(), strict=True)):
            if sample.reason:
                continue  # ended; its row keeps running so the batch keeps its shape
            text = sample.add(token)
            if text:
                yield Piece(index, text)
            if sample.reason:
                yield Done(index, sample.text, sample.tokens, sample.reason, sample.dropped_bytes)
        if all(sample.reason for sample in samples):
            return
        with timed(batch, "sample"):
            logits = source.step(tokens)


class RNNSource:
    """Next-token logits of an RNNLM for a batch of rows, one step at a time (the model's own
    step, `RNNLM.step`: the same maths as its forward pass, one token per row)."""

    def __init__(self, model: RNNLM, batch: int, dtype: torch.dtype = torch.float32):
        self.reference = model  # fp32: runs the prompt
        # Low precision steps run a converted copy; the caller's model keeps fp32 weights.
        self.model = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
        self.dtype = dtype
        self.batch = batch

    @torch.inference_mode()
    def start(self, context: list[int]) -> torch.Tensor:
        """Run the context once (one row, fp32) and give every row its state: logits (B, V)."""
        device = self.reference.embedding.weight.device
        tokens = torch.tensor([context], dtype=torch.long, device=device)  # (1, T)
        logits, state = self.reference(tokens)  # (1, T, V); per layer (1, 1, H) or a pair
        # The sequence layout (1, 1, H) -> the step's (B, H), one copy of the row per sample.
        self.state = [
            tuple(map(self._rows, layer_state))
            if isinstance(layer_state, tuple)
            else self._rows(layer_state)
            for layer_state in state
        ]
        return logits[:, -1].expand(self.batch, -1)  # (B, V)

    def _rows(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[0].to(self.dtype).expand(self.batch, -1).contiguous()  # (1, 1, H) -> (B, H)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B,) -> logits (B, V) of the next token."""
        logits, self.state = self.model.step(tokens, self.state)
        return logits.float()  # (B, V)


class NGramSource:
    """Next-token log-probabilities of a KneserNey n-gram, as logits (B, V)."""

    def __init__(self, ngram, batch: int):
        self.ngram = ngram
        self.keep = max(ngram.order - 1, 1)  # context ids that matter
        self.batch = batch

    def start(self, context: list[int]) -> torch.Tensor:
        self.contexts = [list(context[-self.keep :]) for _ in range(self.batch)]
        return self._logits()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        for context, token in zip(self.contexts, tokens.tolist(), strict=True):
            context.append(token)
            del context[: -self.keep]
        return self._logits()

    def _logits(self) -> torch.Tensor:
        rows = [self.ngram.distribution(np.asarray(c, dtype=np.int64)) for c in self.contexts]
        return torch.from_numpy(np.log(np.stack(rows))).float()  # (B, V); KN has no zeros


class MixedSource:
    """The mixture (1 - λ) p_rnn + λ p_ngram of two sources, as logits (B, V): its log."""

    def __init__(self, rnn: RNNSource, ngram: NGramSource, weight: float):
        self.rnn, self.ngram = rnn, ngram
        self.log_weights = (math.log1p(-weight) if weight < 1 else -math.inf,
                            math.log(weight) if weight > 0 else -math.inf)  # fmt: skip

    def start(self, context: list[int]) -> torch.Tensor:
        return self._mix(self.rnn.start(context), self.ngram.start(context))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._mix(self.rnn.step(tokens), self.ngram.step(tokens.cpu()))

    def _mix(self, rnn_logits: torch.Tensor, ngram_logits: torch.Tensor) -> torch.Tensor:
        rnn_logp = F.log_softmax(rnn_logits.float(), dim=-1)  # (B, V)
        ngram_logp = ngram_logits.to(rnn_logp.device)  # (B, V), already normalized
        return torch.logaddexp(rnn_logp + self.log_weights[0], ngram_logp + self.log_weights[1])


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Top-k, then top-p, over (B, V) logits: what is cut becomes -inf (probability 0).

    top-p keeps, per row, the smallest set of the likeliest tokens whose probability (after
    top-k) reaches p: a token stays when the tokens likelier than it hold less than p.
    """
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        best = logits.topk(top_k, dim=-1)  # values, indices: (B, k)
        logits = torch.full_like(logits, -math.inf).scatter_(-1, best.indices, best.values)
    if top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = ordered.softmax(dim=-1)  # (B, V)
        likelier_mass = probs.cumsum(dim=-1) - probs  # (B, V)
        ordered = ordered.masked_fill(likelier_mass >= top_p, -math.inf)
        logits = torch.empty_like(logits).scatter_(-1, order, ordered)
    return logits


class TokenChooser:
    """Picks the next token of every row from logits (B, V)."""

    def __init__(self, config: SampleConfig, vocab_size: int, device: torch.device):
        self.config = config
        if not config.greedy:
            self.generators = [
                torch.Generator(device=device).manual_seed(config.seed_of(i))
                for i in range(config.num_samples)
            ]
            self.noise = torch.empty(config.num_samples, vocab_size, device=device)  # (B, V)

    @torch.inference_mode()
    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.greedy:
            return logits.argmax(dim=-1)  # (B,)
        # Shift the largest logit to 0 and keep the temperature a normal number of the logits'
        # dtype: a tiny one (1e-45, which is 0 in fp32) then sends the others towards -inf
        # (greedy, ties shared) where dividing as is gives inf/inf or 0/0, NaN, empty text.
        temperature = max(c.temperature, torch.finfo(logits.dtype).tiny)
        logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
        probs = filter_logits(logits, c.top_k, c.top_p).softmax(dim=-1)
        # The exponential race (Gumbel-max): argmax p / E, E ~ Exp(1), is token t with
        # probability p[t]; each row draws from its own generator, so rows are independent.
        for row, generator in zip(self.noise, self.generators, strict=True):
            row.exponential_(generator=generator)
        self.noise.clamp_(min=torch.finfo(self.noise.dtype).tiny)  # never 0/0
        return (probs / self.noise).argmax(dim=-1)  # (B,)


class SampleText:
    """One sample's decoded text, and the rules that end it.

    A stop string may straddle tokens: the last len(longest stop) - 1 characters are kept to
    search in together with each new piece. The text is cut right after the stop string
    (which stays in the text) or at --chars characters, whichever comes first.
    """

    def __init__(self, tokenizer: Tokenizer, config: SampleConfig):
        self.decoder = tokenizer.decoder()
        self.config = config
        self.keep = max((len(s) for s in config.stops), default=1) - 1
        self.tail = ""  # the last `keep` characters of the text
        self.parts: list[str] = []
        self.chars = 0
        self.tokens = 0
        self.reason: str | None = None  # why it ended: "length", "chars" or "stop"
        self.dropped_bytes = 0  # of an incomplete last character, when it ended by length

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, token: int) -> str:
        """Take the next token; return the text it completes (maybe cut, maybe empty)."""
        self.tokens += 1
        text = self.decoder.feed(token)  # "" while a multi-byte character is incomplete
        if text and self.config.stops:
            text = self._cut_at_stop(text)
        room = None if self.config.max_chars is None else self.config.max_chars - self.chars
        if room is not None and (len(text) > room or (len(text) == room and not self.reason)):
            text, self.reason = text[:room], "chars"  # a stop string cut later loses
        if not self.reason and self.tokens >= self.config.max_tokens:
            self.reason = "length"
            self.dropped_bytes = self.decoder.flush()  # half a character is never text
        self.parts.append(text)
        self.chars += len(text)
        return text

    def _cut_at_stop(self, text: str) -> str:
        window = self.tail + text
        ends = [window.find(s) + len(s) for s in self.config.stops if s in window]
        if ends:
            self.reason = "stop"
            return text[: min(ends) - len(self.tail)]
        self.tail = window[len(window) - self.keep :] if self.keep else ""
        return text
