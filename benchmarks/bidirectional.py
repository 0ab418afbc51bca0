"""Why a language model cannot be bidirectional: a model for the lessons only, never a training
option of rnngen.

A bidirectional LSTM (Schuster & Paliwal 1997) reads a window forwards and backwards and
concatenates the two states at every position: the better *encoder* when the whole input is
there. Trained as a language model, to predict token t+1 at position t, its backward half has
already read token t+1 (it is the input at position t+1, which the backward pass reads before
position t). Training then finds the shortcut: copy the next input. The training and
validation loss, scored the way it trains, collapse towards zero, far below the entropy of
the text, which no honest model can beat. Only the last position of a window has no future
to copy from, and that is the only situation a generator is ever in: scored honestly, each
token from what precedes it alone, or asked to generate, it is a model that has learned its
task on one position in `seq_len`.

`BidirectionalLM` speaks just enough of `RNNLM`'s interface for rnngen's Trainer and
`model_logprobs` ("as trained": the window it is given, future included): `forward(tokens,
state, targets=...)` with an empty state, `score`, `config`. `honest_logprobs` and
`generate` use it left to right.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnngen.config import ModelConfig


class BidirectionalLM(nn.Module):
    """Embedding -> one bidirectional LSTM layer -> a linear output over both directions."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config  # the vocabulary and the widths; one layer, untied
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        nn.init.normal_(self.embedding.weight, std=config.embed_size**-0.5)
        self.lstm = nn.LSTM(config.embed_size, config.hidden_size, batch_first=True,
                            bidirectional=True)  # fmt: skip
        self.head = nn.Linear(2 * config.hidden_size, config.vocab_size)

    def forward(self, tokens, state=None, targets=None, ar=0.0, tar=0.0):
        """tokens (B, T) -> logits (B, T, V), or ln p(targets) (B, T) with targets; the
        "state" is always empty: nothing carries between windows (the backward half would
        need the text after the window)."""
        both, _ = self.lstm(self.embedding(tokens))  # (B, T, 2H)
        logits = self.head(both)  # (B, T, V)
        if targets is None:
            return logits, []
        logp = -F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
        return logp, [], logp.new_zeros(())

    def score(self, tokens, targets, state=None):
        logp, state, _ = self(tokens, state, targets=targets)
        return logp, state


@torch.inference_mode()
def honest_logprobs(model: BidirectionalLM, ids: np.ndarray, window: int = 64,
                    batch: int = 512) -> np.ndarray:  # fmt: skip
    """ln p of each target ids[1:] from the tokens before it only: for every target, the
    model reads the (up to) `window` tokens that precede it and predicts from its last
    position, where the backward half has read nothing of the future. (len(ids) - 1,)."""
    model.eval()
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    out = [
        _last_logprobs(model, ids[None, :t], ids[t : t + 1])
        for t in range(1, min(window, len(ids)))
    ]
    for start in range(window, len(ids), batch):
        targets = torch.arange(start, min(start + batch, len(ids)))  # (R,)
        rows = targets[:, None] + torch.arange(-window, 0)[None, :]  # (R, W)
        out.append(_last_logprobs(model, ids[rows], ids[targets]))
    return torch.cat(out).numpy()


def _last_logprobs(model, inputs, targets):
    """ln p of targets (R,) from the last position of inputs (R, W), float64."""
    logits, _ = model(inputs)  # (R, W, V)
    logp = F.log_softmax(logits[:, -1].float(), dim=-1)  # (R, V)
    return logp.gather(1, targets[:, None])[:, 0].double()


@torch.inference_mode()
def generate(model: BidirectionalLM, context: list[int], length: int, window: int = 64,
             temperature: float = 0.8, seed: int = 0) -> list[int]:  # fmt: skip
    """Sample `length` tokens after `context`, each from the tokens before it (the only way
    a text can be generated: the future does not exist yet)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    tokens = list(context)
    for _ in range(length):
        logits, _ = model(torch.tensor([tokens[-window:]]))  # (1, T, V)
        probs = F.softmax(logits[0, -1].float() / temperature, dim=-1)  # (V,)
        tokens.append(int(torch.multinomial(probs, 1, generator=generator)))
    return tokens[len(context) :]
