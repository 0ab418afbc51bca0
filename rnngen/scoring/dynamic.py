"""Dynamic evaluation (Krause et al. 2018): the model keeps learning while it reads.

A text is scored segment by segment, the state carried throughout as in static evaluation.
After a segment has been scored, one SGD step on that segment's loss adapts the weights, so
later segments are predicted by a model that has seen the document's own names, words and
style. Every score is an honest prediction: a segment is scored *before* the update that
uses it, and an update only ever saw text before the segment it helps to predict.

Krause et al. also pull the weights back towards the trained ones (`decay`), so adaptation
to one passage does not wipe out what the model knew; 0 turns it off. The caller's model is
never changed: a copy adapts, and the checkpoint on disk is not touched.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rnngen.errors import RnngenError
from rnngen.hardware import autocast
from rnngen.model import RNNLM, detach_state
from rnngen.threads import timed


@dataclass(frozen=True)
class DynamicConfig:
    """The update rule. Defaults tuned on validation text (BENCHMARKS.md, dynamic evaluation)."""

    learning_rate: float = 0.1  # SGD step on the mean loss (nats/token) of a segment
    segment: int = 16  # tokens scored between two updates
    decay: float = 0.0  # share of the way back to the trained weights after each update

    def __post_init__(self) -> None:
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise RnngenError(f"--dynamic-lr must be above 0, got {self.learning_rate}")
        if self.segment < 1:
            raise RnngenError(f"--dynamic-segment must be at least 1, got {self.segment}")
        if not 0 <= self.decay < 1:
            raise RnngenError(f"--dynamic-decay must be in [0, 1), got {self.decay}")


def dynamic_logprobs(
    model: RNNLM,
    ids: np.ndarray,
    device: torch.device,
    config: DynamicConfig | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """ln p of each target ids[1:], each scored before the update that learns from it.

    One stream, in text order (adaptation is sequential by nature). Returns (len(ids) - 1,)
    float64, the same targets as `evaluate.model_logprobs`.
    """
    return Adaptation(model, device, config, precision).read(ids)[0]


class Adaptation:
    """A copy of a model that learns from each segment right after scoring it."""

    def __init__(
        self,
        model: RNNLM,
        device: torch.device,
        config: DynamicConfig | None = None,
        precision: str = "fp32",
    ):
        self.config = config or DynamicConfig()
        self.device, self.precision = device, precision
        self.model = _trainable_copy(model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.trained = [p.detach().clone() for p in self.params] if self.config.decay else []
        self.optimizer = torch.optim.SGD(self.params, lr=self.config.learning_rate)

    def read(self, ids: np.ndarray, state=None) -> tuple[np.ndarray, list]:
        """Score the targets ids[1:] segment by segment, from `state` (None: a fresh one),
        updating after each segment. Returns ((len(ids) - 1,) float64, the state after)."""
        segment = self.config.segment
        tokens = torch.from_numpy(np.asarray(ids, dtype=np.int64)).to(self.device)  # (N,)
        out = np.empty(max(len(ids) - 1, 0), dtype=np.float64)
        for start in range(0, len(out), segment):
            y = tokens[start + 1 : start + 1 + segment].unsqueeze(0)  # (1, L)
            x = tokens[start : start + y.shape[1]].unsqueeze(0)  # (1, L)
            with timed(y.shape[1], "dynamic"):
                with torch.enable_grad(), autocast(self.device, self.precision):
                    logp, state = self.model.score(x, y, state)  # (1, L)
                out[start : start + y.shape[1]] = logp[0].detach().double().cpu().numpy()
                self._update(-logp.mean())  # after the segment's scores are kept
            state = detach_state(state)
        return out, state

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.config.decay:
            with torch.no_grad():
                for param, original in zip(self.params, self.trained, strict=True):
                    param.add_(original - param, alpha=self.config.decay)


def _trainable_copy(model: RNNLM) -> RNNLM:
    """A copy that takes gradients deterministically: training mode (cuDNN's RNN backward
    needs it) with every dropout off, so it computes exactly what evaluation does."""
    adapted = copy.deepcopy(model)
    adapted.config = dataclasses.replace(adapted.config, dropout=0.0, embed_dropout=0.0)
    for module in adapted.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    adapted.train()
    for param in adapted.parameters():
        param.requires_grad_(True)
    return adapted


def dynamic_config(dynamic: DynamicConfig | bool | None) -> DynamicConfig | None:
    """`dynamic` as the library takes it: a DynamicConfig, True for its defaults, or None."""
    if isinstance(dynamic, bool):
        return DynamicConfig() if dynamic else None
    return dynamic
