"""The fixed-window neural language model (Bengio et al. 2003): what RNNs were invented to fix.

To predict the next token it embeds the last `window` tokens read (the current one and the
window - 1 before it), concatenates them, runs them through `layers` tanh layers and the
same output layer as the RNN (tied to the embedding by default). Unlike an n-gram, similar
contexts share parameters (a word seen after "the cat" informs "the dog"); unlike an RNN it
cannot see anything beyond its window, and it learns a separate weight for each position in
it rather than one step applied again and again.

It speaks the recurrent interface of the rest of the library, so that training (state carried
across windows), eval, scoring, sampling, the mixture and every other consumer of `RNNLM`
work on it unchanged: its "state" is the embeddings of the last window - 1 tokens read, one
(1, B, (window - 1) x E) tensor in the sequence layout, (B, ...) in the step layout. A zero
state is "nothing read yet" (zero vectors in every slot), just as an RNN's zero state is the
start of a text. The sequence pass and the one-token step compute the same thing: the
sequence pass slides the window over the state and the new tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from rnngen.model.rnn import RNNLM
from rnngen.model.state import State


class WindowLM(RNNLM):
    def _build_body(self) -> None:
        c = self.config
        sizes = [c.window * c.embed_size] + [c.hidden_size] * c.layers
        self.layers = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1]) for i in range(c.layers))

    def top_size(self) -> int:
        return self.config.hidden_size

    def _init_weights(self) -> None:
        nn.init.normal_(self.embedding.weight, std=self.config.embed_size**-0.5)
        for layer in self.layers:  # tanh layers: Glorot's uniform range, zero biases
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def features(self, tokens: torch.Tensor, state: State | None = None) -> tuple:
        """tokens (B, T) -> the top layer's output (B, T, H) before output dropout, state."""
        c = self.config
        batch, length = tokens.shape
        embedded = self._embed(tokens)  # (B, T, E)
        past = self._past(state, batch, embedded)  # (B, N-1, E)
        read = torch.cat([past, embedded], dim=1)  # (B, N-1+T, E)
        dropped = self._drop(read, "input")
        # the window ending at each position, oldest token first: (B, T, N*E) (slices rather
        # than `unfold`, which ONNX cannot export with T free)
        x = torch.cat([dropped[:, i : i + length] for i in range(c.window)], dim=-1)
        x = self._hidden(x, lambda h: self._drop(h, "hidden"))  # (B, T, H)
        new_past = read[:, read.shape[1] - (c.window - 1) :]  # (B, N-1, E)
        return x, [new_past.reshape(1, batch, -1)]

    def step_features(self, x: torch.Tensor, state: State | None = None) -> tuple:
        """An embedded token per row x (B, E) -> the top layer's output (B, H), new state."""
        c = self.config
        past = self._past(None if state is None else [state[0][None]], x.shape[0], x)
        read = torch.cat([past, x[:, None]], dim=1)  # (B, N, E)
        top = self._hidden(read.reshape(x.shape[0], c.window * c.embed_size), lambda h: h)
        return top, [read[:, 1:].reshape(x.shape[0], -1)]  # (B, (N-1)*E)

    def _past(self, state: State | None, batch: int, like: torch.Tensor) -> torch.Tensor:
        """The embeddings of the last window - 1 tokens read (B, N-1, E): zeros for none."""
        c = self.config
        if state is None:
            return like.new_zeros(batch, c.window - 1, c.embed_size)
        return state[0][0].to(like.dtype).reshape(batch, c.window - 1, c.embed_size)

    def _hidden(self, x: torch.Tensor, drop) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = torch.tanh(layer(x))
            x = drop(x) if i < len(self.layers) - 1 else x
        return x
