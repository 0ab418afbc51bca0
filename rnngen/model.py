"""RNNLM: embedding -> stacked LSTM/GRU/tanh-RNN -> (tied) output head.

Each layer is its own single-layer `nn.LSTM`/`nn.GRU`/`nn.RNN` (still cuDNN on a GPU), so
dropout between layers and skip connections are explicit: with `residual`, a layer adds its
input to its output whenever the sizes match, which is what lets deep stacks (6-8 layers)
train instead of losing the gradient on the way down.

Tying is by construction: the output layer multiplies by the embedding matrix itself (after a
projection when the hidden and embedding sizes differ), so the state dict holds one tensor
for both and a safetensors file never contains aliases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnngen.config import ModelConfig

RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

# Per layer: (h, c) for an LSTM, h alone otherwise; each (1, B, H).
State = list


class RNNLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        sizes = [c.embed_size] + [c.hidden_size] * c.layers
        self.layers = nn.ModuleList(
            RECURRENT[c.cell](sizes[i], sizes[i + 1], batch_first=True) for i in range(c.layers)
        )
        self.dropout = nn.Dropout(c.dropout)
        out_size = c.embed_size if c.tie else c.hidden_size
        self.projection = nn.Linear(c.hidden_size, out_size) if c.hidden_size != out_size else None
        self.head = None if c.tie else nn.Linear(out_size, c.vocab_size)
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size)) if c.tie else None
        self._init_weights()

    def _init_weights(self) -> None:
        # std 1/sqrt(E): the tied output's initial logits stay near zero for any size (a large
        # std makes them huge and the first steps all clip), while small models still leave
        # the unigram plateau quickly (a fixed 0.05 left them stuck there).
        nn.init.normal_(self.embedding.weight, std=self.config.embed_size**-0.5)
        for layer in self.layers:
            for name, param in layer.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(param)
                    if isinstance(layer, nn.LSTM):  # forget-gate bias 1: remember by default
                        h = layer.hidden_size
                        param.data[h : 2 * h] = 1.0
                else:
                    nn.init.uniform_(param, -(layer.hidden_size**-0.5), layer.hidden_size**-0.5)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """tokens (B, T) -> logits (B, T, V) and the state after the last step."""
        x = self._embed(tokens)  # (B, T, E)
        x = self.dropout(x)
        new_state = []
        for i, layer in enumerate(self.layers):
            y, layer_state = layer(x, None if state is None else state[i])  # (B, T, H)
            if self.config.residual and y.shape[-1] == x.shape[-1]:
                y = y + x
            x = self.dropout(y) if i < len(self.layers) - 1 else y
            new_state.append(layer_state)
        return self.logits(self.dropout(x)), new_state

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        weight = self.embedding.weight  # (V, E)
        p = self.config.embed_dropout
        if self.training and p > 0:
            # Drop whole word types (AWD-LSTM's embedding dropout): every occurrence of a
            # dropped token in the batch loses its vector, the rest are rescaled.
            keep = torch.empty(weight.shape[0], 1, device=weight.device).bernoulli_(1 - p)
            weight = weight * keep / (1 - p)
        return F.embedding(tokens, weight)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H) -> logits (B, T, V)."""
        if self.projection is not None:
            hidden = self.projection(hidden)
        if self.head is not None:
            return self.head(hidden)
        return F.linear(hidden, self.embedding.weight, self.output_bias)


def detach_state(state: State | None) -> State | None:
    """Cut the graph between windows (truncated BPTT) but keep the values."""
    if state is None:
        return None
    return [tuple(s.detach() for s in st) if isinstance(st, tuple) else st.detach() for st in state]


def reset_rows(state: State | None, rows: list[int]) -> State | None:
    """The state with the given batch rows set back to zero (a fresh start for those streams)."""
    if state is None or not rows:
        return state

    def zeroed(tensor: torch.Tensor) -> torch.Tensor:  # (1, B, H)
        tensor = tensor.clone()
        tensor[:, rows] = 0
        return tensor

    return [tuple(map(zeroed, st)) if isinstance(st, tuple) else zeroed(st) for st in state]


def state_tensors(state: State | None) -> dict[str, torch.Tensor]:
    """Flatten a state to named tensors (for the resume file)."""
    out = {}
    for i, st in enumerate(state or []):
        parts = st if isinstance(st, tuple) else (st,)
        for j, tensor in enumerate(parts):
            out[f"state.{i}.{j}"] = tensor.detach().float().cpu().contiguous()
    return out


def state_from_tensors(tensors: dict[str, torch.Tensor], cell: str, device) -> State | None:
    layers = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("state.")})
    if not layers:
        return None
    state = []
    for i in layers:
        if cell == "lstm":
            state.append((tensors[f"state.{i}.0"].to(device), tensors[f"state.{i}.1"].to(device)))
        else:
            state.append(tensors[f"state.{i}.0"].to(device))
    return state


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
