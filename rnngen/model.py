"""RNNLM: embedding -> stacked LSTM/GRU/tanh-RNN -> (tied) output head.

Each layer is its own single-layer `nn.LSTM`/`nn.GRU`/`nn.RNN` (still cuDNN on a GPU), so
dropout between layers and skip connections are explicit: with `residual`, a layer adds its
input to its output whenever the sizes match, which is what lets deep stacks (6-8 layers)
train instead of losing the gradient on the way down.

Tying is by construction: the output layer multiplies by the embedding matrix itself (after a
projection when the hidden and embedding sizes differ), so the state dict holds one tensor
for both and a safetensors file never contains aliases. With `softmax="adaptive"` the output
is rnngen/adaptive.py's (its head tied to the embedding when `tie`).

AWD-LSTM's model-side regularizers (Merity et al. 2017) are options of the config: dropout
rates per position, locked (one mask per sequence) or not, and weight drop, DropConnect on
the hidden-to-hidden matrices. Weight drop masks the matrix once per forward pass and hands
it to the layer's own fused kernel (cuDNN, oneDNN) through `torch.func.functional_call`, so
it costs one masked copy of a matrix rather than a Python loop over time steps; the
parameter itself, and so every saved checkpoint, stays unmasked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnngen.adaptive import AdaptiveSoftmax
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
        out_size = c.embed_size if c.tie else c.hidden_size
        self.projection = nn.Linear(c.hidden_size, out_size) if c.hidden_size != out_size else None
        full = c.softmax == "full"
        self.head = nn.Linear(out_size, c.vocab_size) if full and not c.tie else None
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size)) if full and c.tie else None
        self._init_weights()
        self.adaptive = None
        if not full:  # after _init_weights: the module initializes its own layers
            tied = self.embedding if c.tie else None
            self.adaptive = AdaptiveSoftmax(out_size, c.vocab_size, c.cutoffs, tied)

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
        self,
        tokens: torch.Tensor,
        state: State | None = None,
        targets: torch.Tensor | None = None,
        ar: float = 0.0,
        tar: float = 0.0,
    ):
        """tokens (B, T) -> logits (B, T, V) and the state after the last step.

        With the adaptive softmax the "logits" are the normalized log-probabilities. Given
        targets (B, T), it returns instead (ln p(target) (B, T) fp32, the state, penalty):
        the cheap path, where an adaptive softmax only runs the clusters the targets need;
        penalty is `ar` x mean(top output^2) + `tar` x mean((h_t - h_{t-1})^2) of the top
        layer (AWD-LSTM's activation and temporal activation regularization), a scalar.
        """
        top, new_state = self.features(tokens, state)  # (B, T, H)
        output = self._drop(top, "output")
        if targets is None:
            return self.logits(output), new_state
        logp = self.target_logprobs(output, targets)  # (B, T)
        penalty = logp.new_zeros(())
        if ar:
            penalty = penalty + ar * output.float().pow(2).mean()
        if tar and top.shape[1] > 1:
            penalty = penalty + tar * (top[:, 1:] - top[:, :-1]).float().pow(2).mean()
        return logp, new_state, penalty

    def features(self, tokens: torch.Tensor, state: State | None = None) -> tuple:
        """tokens (B, T) -> the top layer's output (B, T, H) before output dropout, state."""
        x = self._drop(self._embed(tokens), "input")  # (B, T, E)
        new_state = []
        for i, layer in enumerate(self.layers):
            y, layer_state = self._run_layer(layer, x, None if state is None else state[i])
            if self.config.residual and y.shape[-1] == x.shape[-1]:
                y = y + x  # (B, T, H)
            x = self._drop(y, "hidden") if i < len(self.layers) - 1 else y
            new_state.append(layer_state)
        return x, new_state

    def _run_layer(self, layer: nn.Module, x: torch.Tensor, state) -> tuple:
        """One recurrent layer; in training with weight drop, on a masked hidden matrix."""
        p = self.config.weight_drop
        if not (self.training and p > 0):
            return layer(x, state)
        weight = layer.weight_hh_l0  # (G*H, H)
        masked = weight * keep_mask(weight.shape, p, weight)  # one mask for the whole window
        return torch.func.functional_call(layer, {"weight_hh_l0": masked}, (x, state))

    def _drop(self, x: torch.Tensor, position: str) -> torch.Tensor:
        """Dropout at `position` (input, hidden, output) of x (B, T, D): with locked dropout
        one mask per sequence, shared by all its time steps."""
        p = self.config.dropout_at(position)
        if not self.training or p == 0:
            return x
        if not self.config.locked_dropout:
            return x * keep_mask(x.shape, p, x)
        return x * keep_mask((x.shape[0], 1, x.shape[2]), p, x)  # (B, 1, D): all steps

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        weight = self.embedding.weight  # (V, E)
        p = self.config.embed_dropout
        if self.training and p > 0:
            # Drop whole word types (AWD-LSTM's embedding dropout): every occurrence of a
            # dropped token in the batch loses its vector, the rest are rescaled.
            weight = weight * keep_mask((weight.shape[0], 1), p, weight)  # (V, 1)
        return F.embedding(tokens, weight)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., H) -> logits (..., V) (an adaptive softmax's are log-probabilities)."""
        if self.projection is not None:
            hidden = self.projection(hidden)
        if self.adaptive is not None:
            return self.adaptive.log_probs(hidden)
        if self.head is not None:
            return self.head(hidden)
        return F.linear(hidden, self.embedding.weight, self.output_bias)

    def target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H), targets (B, T) -> ln p(target) (B, T), fp32."""
        if self.adaptive is not None:
            if self.projection is not None:
                hidden = self.projection(hidden)
            return self.adaptive.target_logprobs(hidden, targets)
        logits = self.logits(hidden).float()  # (B, T, V)
        flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               reduction="none")  # fmt: skip
        return -flat.reshape(targets.shape)

    def score(self, tokens: torch.Tensor, targets: torch.Tensor, state: State | None = None):
        """ln p(target) (B, T) fp32 of each target after tokens (B, T), and the state after."""
        logp, state, _ = self(tokens, state, targets=targets)
        return logp, state


def keep_mask(shape: tuple, p: float, like: torch.Tensor) -> torch.Tensor:
    """A dropout mask of `shape`: 0 with probability p, else 1 / (1 - p), in like's dtype.

    Drawn by comparing uniform numbers, not by `bernoulli_`, which on a CPU takes 2.5-3x as
    long (9.3 vs 3.2 ms for a 1600 x 400 weight-drop mask, BENCHMARKS.md): dropout masks were
    a tenth of a small model's training step."""
    keep = torch.rand(shape, device=like.device) >= p
    return keep.to(like.dtype) / (1 - p)


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
