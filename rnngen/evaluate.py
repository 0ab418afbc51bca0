"""Scoring text: the RNN's nats per target, and the comparison table against n-grams.

Perplexity = exp(mean nats per token). Bits per character and per byte divide the *total*
nats by ln 2 times the characters or bytes of the scored text, so models with different
tokenizers compare fairly. Every row of a comparison scores exactly the same targets: the
ids[1:] of one token stream, each once, given everything before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnngen.data import batchify
from rnngen.hardware import autocast
from rnngen.model import RNNLM


@dataclass(frozen=True)
class Score:
    """Total nats over `tokens` targets of a text with `chars` characters and `bytes` bytes."""

    name: str
    nats: float
    tokens: int
    chars: int
    bytes: int

    @property
    def loss(self) -> float:
        return self.nats / max(self.tokens, 1)

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bits_per_char(self) -> float:
        return self.nats / (math.log(2) * max(self.chars, 1))

    @property
    def bits_per_byte(self) -> float:
        return self.nats / (math.log(2) * max(self.bytes, 1))

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "tokens": self.tokens,
            "nats": self.nats,
            "loss": self.loss,
            "ppl": self.ppl,
            "bits_per_char": self.bits_per_char,
            "bits_per_byte": self.bits_per_byte,
        }


@torch.inference_mode()
def model_logprobs(
    model: RNNLM,
    ids: np.ndarray,
    device: torch.device,
    precision: str = "fp32",
    streams: int = 1,
    window: int = 512,
) -> np.ndarray:
    """ln p of each target ids[1:] given what precedes it, the state carried throughout.

    With `streams` > 1 the targets are cut into that many contiguous pieces scored side by
    side, each starting from a fresh state: faster, and each target is still scored exactly
    once, but the first tokens of each piece see less context. `rnngen eval` uses 1.
    Returns (len(ids) - 1,) float64.
    """
    was_training = model.training
    model.eval()
    n_targets = len(ids) - 1
    streams = max(1, min(streams, n_targets))
    inputs = batchify(np.asarray(ids[:-1]), streams)  # (S, N)
    targets = batchify(np.asarray(ids[1:]), streams)  # (S, N)
    used = inputs.shape[1] * streams
    out = np.empty((streams, inputs.shape[1]), dtype=np.float64)
    state = None
    for start in range(0, inputs.shape[1], window):
        x = torch.from_numpy(inputs[:, start : start + window].astype(np.int64)).to(device)
        y = torch.from_numpy(targets[:, start : start + window].astype(np.int64)).to(device)
        with autocast(device, precision):
            logits, state = model(x, state)  # (S, W, V)
        logp = F.log_softmax(logits.float(), dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
        out[:, start : start + window] = logp.double().cpu().numpy()
    flat = out.reshape(-1)
    if used < n_targets:  # the remainder batchify dropped: score it as one more stream
        tail = model_logprobs(model, ids[used:], device, precision, 1, window)
        flat = np.concatenate([flat, tail])
    model.train(was_training)
    return flat
