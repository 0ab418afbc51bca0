"""RNNLM: embedding -> stacked LSTM/GRU/tanh-RNN -> (tied) output head.

Each layer is its own single-layer `nn.LSTM`/`nn.GRU`/`nn.RNN` (still cuDNN on a GPU), so
dropout between layers and skip connections are explicit, and written once (`_connect`, used
by the sequence pass and the one-token step alike). They are what lets deep stacks (6-8
layers) train instead of losing the gradient on the way down:

* residual (He et al. 2016): a layer adds its input to its output whenever the sizes match;
* highway (Srivastava et al. 2015): a gate g = sigmoid(W x + b) computed from the layer's
  input x mixes the two, g * output + (1 - g) * x; b starts at -1, so at first the layers
  mostly carry their input through;
* dense (Huang et al. 2017; Godin et al. 2017 for LMs): every layer reads the embedding and
  the outputs of every layer below it, concatenated, and the output layer reads every
  layer's output (projected to the embedding's width when tied).

The fixed-window LM (window.py) is a subclass with the same embedding, output layer, forward
pass, scoring and one-token step, whose "state" is the window of the last tokens it read;
`rnngen.model.create_model(config)` builds whichever kind the config names. The state's two
layouts (the sequence pass's and the one-token step's) and its helpers are in state.py.

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
from rnngen.model.state import State, group_state, state_layout

RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

CELLS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}
HIGHWAY_BIAS = -1.0  # a highway gate's starting bias: carry the input through, at first


class RNNLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_size)
        self._build_body()
        top = self.top_size()
        out_size = c.embed_size if c.tie else top
        self.projection = nn.Linear(top, out_size) if top != out_size else None
        full = c.softmax == "full"
        self.head = nn.Linear(out_size, c.vocab_size) if full and not c.tie else None
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size)) if full and c.tie else None
        self._init_weights()
        self.adaptive = None
        if not full:  # after _init_weights: the module initializes its own layers
            tied = self.embedding if c.tie else None
            self.adaptive = AdaptiveSoftmax(out_size, c.vocab_size, c.cutoffs, tied)

    def _build_body(self) -> None:
        """The recurrent layers, and the highway gates where the skips have them."""
        c = self.config
        sizes = self.input_sizes()
        self.layers = nn.ModuleList(
            RECURRENT[c.cell](sizes[i], c.hidden_size, batch_first=True) for i in range(c.layers)
        )
        if c.skip == "highway":  # a gate wherever a layer's input is as wide as its output
            same = [i for i, size in enumerate(sizes) if size == c.hidden_size]
            self.gates = nn.ModuleDict(
                {str(i): nn.Linear(c.hidden_size, c.hidden_size) for i in same}
            )

    def input_sizes(self) -> list[int]:
        """The width of each layer's input."""
        c = self.config
        if c.skip == "dense":  # the embedding and every layer below
            return [c.embed_size + i * c.hidden_size for i in range(c.layers)]
        return [c.embed_size] + [c.hidden_size] * (c.layers - 1)

    def top_size(self) -> int:
        """The width of what the output layer reads (every layer's output, when dense)."""
        c = self.config
        return c.hidden_size * (c.layers if c.skip == "dense" else 1)

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
        for gate in getattr(self, "gates", {}).values():
            nn.init.constant_(gate.bias, HIGHWAY_BIAS)

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
        x0 = self._drop(self._embed(tokens), "input")  # (B, T, E)
        x, below, new_state = x0, [], []
        for i, layer in enumerate(self.layers):
            y, layer_state = self._run_layer(layer, x, None if state is None else state[i])
            x = self._connect(i, x, y, x0, below, lambda h: self._drop(h, "hidden"))
            new_state.append(layer_state)
        return x, new_state

    def _connect(self, i: int, x, y, x0, below: list, drop) -> torch.Tensor:
        """Layer i read x and output y (..., H): the next layer's input, or after the last
        layer what the output layer reads. x0 is the embedded input, `below` collects the
        outputs so far (dense), `drop` is the dropout between layers (identity in a step)."""
        skip, last = self.config.skip, i == len(self.layers) - 1
        if skip == "dense":
            below.append(y)
            return torch.cat(below, dim=-1) if last else torch.cat([x0, *map(drop, below)], -1)
        if skip == "residual" and y.shape[-1] == x.shape[-1]:
            y = y + x
        elif skip == "highway" and str(i) in self.gates:
            gate = torch.sigmoid(self.gates[str(i)](x))  # (..., H)
            y = gate * y + (1 - gate) * x
        return y if last else drop(y)

    @torch.no_grad()
    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> State:
        """The zero state of `batch` rows in the step layout."""
        device = device or self.embedding.weight.device
        zeros = [torch.zeros(batch, width, device=device, dtype=dtype)
                 for widths in state_layout(self.config) for width in widths]  # fmt: skip
        return group_state(zeros, state_layout(self.config))

    def step(self, tokens: torch.Tensor, state: State | None = None) -> tuple:
        """One token per row: tokens (B,) and a state in the step layout (None: zero) ->
        logits (B, V) of the next token (an adaptive softmax's are log-probabilities) and
        the state after it. The same maths as `forward`, in the weights' dtype."""
        x = F.embedding(tokens, self.embedding.weight)  # (B, E)
        top, state = self.step_features(x, state)
        return self.logits(top), state

    def step_features(self, x: torch.Tensor, state: State | None = None) -> tuple:
        """An embedded token per row x (B, E) -> what the output layer reads (B, D) and the
        new state (step layout). Every layer's recurrent h is a node of the graph, so a
        gradient at it counts the paths up the stack and forward in time."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        lstm, cell = self.config.cell == "lstm", CELLS[self.config.cell]
        x0, inp, below, new_state = x, x, [], []
        for i, layer in enumerate(self.layers):
            weights = (layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)
            layer_state = cell(inp, state[i], *weights)  # (h, c) or h; each (B, H)
            new_state.append(layer_state)
            h = layer_state[0] if lstm else layer_state  # (B, H)
            inp = self._connect(i, inp, h, x0, below, lambda t: t)
        return inp, new_state

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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
