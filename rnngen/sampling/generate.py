"""Sampling's records and rules: options, the text a sample makes, the token filters, the precision.

`SampleConfig` (the options, checked), `Piece(index, text)` and `Done(index, ...)` (what a
sample yields), `SampleText` (one sample's decoded text and the rules that end it),
`filter_logits` (top-k, then top-p) and `sampling_precision` (the one precision rule). The
engine that runs them is `rnngen.sampling.batch.SampleBatch` (rows stepped together), and
`rnngen.sampling.sampler` (`Sampler`: rows at their precisions; `generate`: N samples of one
prompt), used alike by `rnngen sample`, the Python API and `rnngen serve`.

Choosing a token: temperature, then top-k, then top-p (nucleus), then the exponential race
with V draws a step from the sample's own `torch.Generator`, seeded `seed + i` for sample i;
temperature 0 is greedy. So sample i of a batch is the sample `seed + i` gives alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rnngen.config import check_device_options
from rnngen.errors import RnngenError

if TYPE_CHECKING:  # torch and sentencepiece load only when a sample runs
    import torch

    from rnngen.corpus.tokenizer import Tokenizer


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
    pieces ends with that character incomplete; its bytes are left out of the text. `seed`:
    the seed its randomness came from (None when greedy).
    """

    index: int
    text: str
    tokens: int
    reason: str
    dropped_bytes: int = 0
    seed: int | None = None  # its generator's seed (None when greedy)


def check_precision(precision: str) -> None:
    check_device_options(precision=precision)


def sampling_precision(precision: str, device, temperature: float) -> str:
    """The precision a sample runs at: the one rule of `rnngen sample`, the Python API and
    `rnngen serve`. Given (fp32, bf16, fp16), as given. `auto`: fp32 for greedy samples
    (temperature 0), the reference an fp32 runtime (an ONNX export) reproduces token for
    token; else bf16 on CPUs with native bf16 and fp32 elsewhere. A step of one token is a
    few matrix-vector products: on a CPU with bf16 units, bf16 halves the bytes to read
    (about twice as fast); on a GPU the step's time is kernel launches, whatever the
    precision."""
    from rnngen.hardware import cpu_has_native_bf16, resolve_precision

    check_precision(precision)
    if precision != "auto":
        return resolve_precision(precision, device)
    if temperature == 0:
        return "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Top-k, then top-p, over (B, V) logits: what is cut becomes -inf (probability 0).

    top-p keeps, per row, the smallest set of the likeliest tokens whose probability (after
    top-k) reaches p: a token stays when the tokens likelier than it hold less than p.
    """
    import torch

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


DEFAULT_LENGTH = 500  # tokens a sample gets when neither a length nor --chars is given


def default_length(max_chars: int | None) -> int:
    """Tokens per sample when none is given: 500, or with a character limit enough for it
    (a character takes at most 4 byte tokens), so that the limit alone ends a sample."""
    return DEFAULT_LENGTH if max_chars is None else 4 * max(max_chars, 0) + 16
