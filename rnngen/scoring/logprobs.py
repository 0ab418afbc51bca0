"""Scoring text: the RNN's nats per target, and the comparison table against n-grams.

Perplexity = exp(mean nats per token). Bits per character and per byte divide the *total*
nats by ln 2 times the characters or bytes of the scored text, so models with different
tokenizers compare fairly. Every row of a comparison scores exactly the same targets: the
ids[1:] of one token stream, each once, given everything before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnngen import metrics
from rnngen.corpus.store import batchify
from rnngen.hardware import autocast
from rnngen.model import RNNLM
from rnngen.threads import timed


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
        return metrics.mean_loss(self.nats, self.tokens)

    @property
    def ppl(self) -> float:
        return metrics.perplexity(self.loss)

    @property
    def bits_per_char(self) -> float:
        return metrics.bits(self.nats, self.chars)

    @property
    def bits_per_byte(self) -> float:
        return metrics.bits(self.nats, self.bytes)

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
    warmup: int = 256,
) -> np.ndarray:
    """ln p of each target ids[1:] given what precedes it, the state carried throughout.

    With `streams` > 1 the targets are cut into that many contiguous pieces scored side by
    side, each target still exactly once. Every piece but the first starts from the state
    after reading the `warmup` tokens before it (not scored), so it sees nearly the context a
    single pass would: several times faster for a tiny difference. `rnngen eval` uses 1.
    Returns (len(ids) - 1,) float64.
    """
    was_training = model.training
    model.eval()
    n_targets = len(ids) - 1
    if n_targets // max(streams, 1) < max(warmup, 1):  # too short to split: one exact pass
        streams = 1
    inputs = batchify(np.asarray(ids[:-1]), streams)  # (S, N)
    targets = batchify(np.asarray(ids[1:]), streams)  # (S, N)
    used = inputs.shape[1] * streams
    out = np.empty((streams, inputs.shape[1]), dtype=np.float64)
    state = _warm_state(
        model, np.asarray(ids[:-1]), inputs.shape[1], streams, warmup, device, precision
    )
    for start in range(0, inputs.shape[1], window):
        x = torch.from_numpy(inputs[:, start : start + window].astype(np.int64)).to(device)
        y = torch.from_numpy(targets[:, start : start + window].astype(np.int64)).to(device)
        with timed(x.numel(), "windows"), autocast(device, precision):
            logp, state = model.score(x, y, state)  # (S, W)
            out[:, start : start + window] = logp.double().cpu().numpy()
    flat = out.reshape(-1)
    if used < n_targets:  # the remainder batchify dropped: score it as one more stream
        tail = model_logprobs(
            model,
            ids[used - warmup :] if used > warmup else ids[used:],
            device,
            precision,
            1,
            window,
        )[warmup if used > warmup else 0 :]
        flat = np.concatenate([flat, tail])
    model.train(was_training)
    return flat


def _warm_state(model, inputs, length, streams, warmup, device, precision):
    """Initial state per stream: zero for the first, after `warmup` prior tokens for the rest."""
    if streams == 1 or warmup == 0 or length == 0:
        return None
    warmup = min(warmup, length)
    starts = np.arange(1, streams) * length  # where streams 1.. begin in `inputs`
    context = np.stack([inputs[s - warmup : s] for s in starts])  # (S-1, W)
    with autocast(device, precision):
        _, warm = model(torch.from_numpy(context.astype(np.int64)).to(device))
    state = []
    for layer in warm:  # prepend stream 0's zero state: (1, S-1, H) -> (1, S, H)
        parts = layer if isinstance(layer, tuple) else (layer,)
        joined = tuple(torch.cat([torch.zeros_like(p[:, :1]), p], dim=1) for p in parts)
        state.append(joined if isinstance(layer, tuple) else joined[0])
    return state


def sequence_logprobs(
    model: RNNLM,
    sequences: list[list[int]],
    context: list[int],
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 256,
) -> np.ndarray:
    """Total ln p of each id sequence, each scored after the same `context` ids.
    Returns (len(sequences),) float64."""
    per_token = sequence_token_logprobs(model, sequences, context, device, precision, batch_size)
    return np.array([logp.sum() for logp in per_token], dtype=np.float64)


@torch.inference_mode()
def sequence_token_logprobs(
    model: RNNLM,
    sequences: list[list[int]],
    context: list[int],
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 256,
) -> list[np.ndarray]:
    """ln p of each token of each id sequence, each scored after the same `context` ids.

    Sequences are padded into batches and masked, so many short texts (lines to score,
    agreement probes) cost a few forward passes. Returns one (len(sequence),) float64 array
    per sequence.
    """
    was_training = model.training
    model.eval()
    result: list[np.ndarray] = [np.zeros(0)] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        length = max(len(sequences[i]) for i in chunk)
        if length == 0:
            continue
        full = np.zeros((len(chunk), len(context) + length), dtype=np.int64)  # (B, C+L)
        for row, i in enumerate(chunk):
            full[row, : len(context)] = context
            full[row, len(context) : len(context) + len(sequences[i])] = sequences[i]
        x = torch.from_numpy(full[:, :-1]).to(device)  # (B, C+L-1)
        y = torch.from_numpy(full[:, 1:]).to(device)  # (B, C+L-1)
        with timed(x.numel(), "sequences"), autocast(device, precision):
            logp, _ = model.score(x, y)  # (B, C+L-1)
            logp = logp[:, len(context) - 1 :].double().cpu().numpy()  # (B, L): the sequence
        for row, i in enumerate(chunk):
            result[i] = logp[row, : len(sequences[i])]
    model.train(was_training)
    return result
