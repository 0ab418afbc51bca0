"""The vanishing gradient, measured: how much a prediction depends on what came k tokens back.

For a target x_t, the model reads x_0 .. x_{t-1} and predicts x_t from its hidden state after
the last of them. Lag k counts back from that last token read: k = 0 is x_{t-1} itself (and
the hidden state that makes the prediction), k = 1 the token before it, and so on. For each
k we take the norm of the gradient of log p(x_t | x_<t) with respect to the input embedding
at t-1-k and with respect to the hidden state there (every layer's output h, taken
together), and average over many positions t.

Positions are batched: each batch row is one position's window of K+1 tokens, entered with
the state that reading the `warmup` tokens before the window leaves (as eval carries its
state), and unrolled one step at a time so that every step's hidden state is a node of the
graph; one backward pass then gives every lag of every row. The recurrent state passed on is
the layer output itself, so the gradient at h includes both the path up the stack and the
path forward in time. Rows near the start of the text have shorter windows: a lag before
the text's first token does not exist, and its average is over the positions that have it
(zero when none do).

Always fp32: the quantities span many orders of magnitude, which bf16 would blur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnngen.errors import RnngenError
from rnngen.model import RNNLM, step_state
from rnngen.threads import timed

# Lag buckets of the summary table: (first, last) inclusive.
BUCKETS = ((0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, 200),
           (201, 500), (501, 1000))  # fmt: skip
WARMUP_STEP = 64  # warm-up lengths shorter than the full one are multiples of this


@dataclass(frozen=True)
class GradientFlow:
    """Mean gradient norms by lag k = 0..K, over the positions that reach back that far."""

    input_norm: np.ndarray  # (K+1,) d log p / d embedding at lag k
    hidden_norm: np.ndarray  # (K+1,) d log p / d hidden state at lag k
    counts: np.ndarray  # (K+1,) positions averaged at each lag
    positions: int

    @property
    def lags(self) -> np.ndarray:
        return np.arange(len(self.counts))

    @property
    def input_relative(self) -> np.ndarray:
        return _relative(self.input_norm)

    @property
    def hidden_relative(self) -> np.ndarray:
        return _relative(self.hidden_norm)

    def buckets(self, relative: np.ndarray) -> list[tuple[str, float]]:
        """(label, mean over the bucket's measured lags) for each bucket the lags reach."""
        rows = []
        for first, last in BUCKETS:
            if first >= len(relative):
                break
            chunk = relative[first : last + 1][self.counts[first : last + 1] > 0]
            label = str(first) if first == last else f"{first}-{min(last, len(relative) - 1)}"
            rows.append((label, float(chunk.mean()) if len(chunk) else float("nan")))
        return rows

    def as_dict(self) -> dict:
        return {
            "positions": self.positions,
            "lags": self.lags.tolist(),
            "counts": self.counts.tolist(),
            "input_norm": self.input_norm.tolist(),
            "hidden_norm": self.hidden_norm.tolist(),
            "input_relative": _finite(self.input_relative),
            "hidden_relative": _finite(self.hidden_relative),
        }


def _relative(norms: np.ndarray) -> np.ndarray:
    return norms / norms[0] if norms[0] > 0 else np.full_like(norms, np.nan)


def _finite(values: np.ndarray) -> list:
    return [float(v) if np.isfinite(v) else None for v in values]


def target_positions(n_ids: int, max_lag: int, positions: int) -> np.ndarray:
    """Up to `positions` targets t, evenly spread; those with a full window of K+1 tokens
    when the text has enough of them, else every target."""
    first = max_lag + 1 if n_ids > max_lag + 1 else 1
    candidates = np.arange(first, n_ids)
    if len(candidates) <= positions:
        return candidates
    return candidates[np.linspace(0, len(candidates) - 1, positions).round().astype(int)]


def gradient_flow(
    model: RNNLM,
    ids: np.ndarray,
    device: torch.device,
    max_lag: int = 200,
    positions: int = 256,
    batch_size: int = 64,
    warmup: int = 256,
) -> GradientFlow:
    """Measure the mean gradient norms at lags 0..max_lag over `positions` targets of `ids`."""
    if len(ids) < 2:
        raise RnngenError("the text is too short to measure gradients (under 2 tokens)")
    if max_lag < 0 or positions < 1 or batch_size < 1:
        raise RnngenError("the lag must be at least 0, positions and batch size at least 1")
    ids = np.asarray(ids, dtype=np.int64)
    targets = target_positions(len(ids), max_lag, positions)
    sums = np.zeros((2, max_lag + 1))  # (input, hidden) x lag
    counts = np.zeros(max_lag + 1, dtype=np.int64)
    groups: dict[tuple[int, int], list[int]] = {}  # (window, warm-up) lengths -> targets
    for t in targets.tolist():
        window = min(t, max_lag + 1)
        warm = min(warmup, t - window)
        if warm < warmup:  # near the start: round down, so that few batch shapes remain
            warm -= warm % WARMUP_STEP
        groups.setdefault((window, warm), []).append(t)
    was_training = model.training
    model.eval()
    try:
        for (window, warm), group in groups.items():
            for start in range(0, len(group), batch_size):
                chunk = np.array(group[start : start + batch_size])  # (B,)
                with timed(len(chunk) * (window + warm), "gradients"):
                    input_norm, hidden_norm = _batch(model, ids, chunk, window, warm, device)
                k = slice(0, window)  # the window's column j is lag window-1-j
                sums[0, k] += input_norm[:, ::-1].sum(axis=0)
                sums[1, k] += hidden_norm[:, ::-1].sum(axis=0)
                counts[k] += len(chunk)
    finally:
        model.train(was_training)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return GradientFlow(means[0], means[1], counts, len(targets))


def _batch(model, ids, targets, window, warm, device) -> tuple[np.ndarray, np.ndarray]:
    """Gradient norms (B, window) at each input of each target's window, oldest first."""
    rows = targets[:, None] + np.arange(-window, 0)[None, :]  # (B, W) input indices
    x = torch.from_numpy(ids[rows]).to(device)  # (B, W)
    y = torch.from_numpy(ids[targets]).to(device)  # (B,)
    state = None
    if warm > 0:
        context = targets[:, None] + np.arange(-window - warm, -window)[None, :]  # (B, warm)
        with torch.no_grad():
            _, state = model(torch.from_numpy(ids[context]).to(device))
    with torch.enable_grad():
        embedded = model.embedding(x).detach().requires_grad_(True)  # (B, W, E)
        hidden, top = _unroll(model, embedded, step_state(state))
        logits = model.logits(top)  # (B, V): from the state after the last token read
        logp = F.log_softmax(logits.float(), dim=-1).gather(1, y[:, None])  # (B, 1)
        flat = [h for step in hidden for h in step]  # W x L tensors of (B, H)
        # The window model's state after the last token read is no input of the prediction:
        # its gradient is None (zero)
        grads = torch.autograd.grad(logp.sum(), [embedded, *flat], allow_unused=True)
    input_norm = grads[0].norm(dim=-1)  # (B, W)
    zero = torch.zeros(len(targets), device=device)
    per_layer = torch.stack(
        [zero if g is None else g.pow(2).sum(-1) for g in grads[1:]]
    )  # (W*L, B)
    hidden_norm = per_layer.view(window, len(hidden[0]), -1).sum(1).sqrt().T  # (B, W)
    return input_norm.cpu().numpy(), hidden_norm.cpu().numpy()


def _unroll(model, embedded, state):
    """Run the model one step at a time (its own step, `RNNLM.step_features`); return every
    step's hidden states (per layer its h, the window model's window) and the last output
    (B, H). Each h is the recurrent state a layer passes on, so a gradient at it counts the
    paths up the stack and forward in time."""
    outputs = []
    for j in range(embedded.shape[1]):
        top, state = model.step_features(embedded[:, j], state)  # (B, H), step layout
        outputs.append([st[0] if isinstance(st, tuple) else st for st in state])
    return outputs, top


@dataclass(frozen=True)
class GradientResult:
    """One checkpoint measured: what `rnngen gradients` reports for it."""

    path: object  # the checkpoint's Path
    label: str  # "lstm 1x512 bpe1024, residual"
    source: str  # the text measured on ("held-out test split", or the --data path)
    tokens: int  # of that text, with its leading line end
    seconds: float
    flow: GradientFlow


def check_options(max_lag: int, positions: int, batch_size: int) -> None:
    """The ranges `rnngen gradients` and the API take, checked before any work."""
    if not 0 <= max_lag <= 5000:
        raise RnngenError(f"--max-lag must be between 0 and 5000, got {max_lag}")
    if not 1 <= positions <= 1_000_000:
        raise RnngenError(f"--positions must be between 1 and 1000000, got {positions}")
    if not 1 <= batch_size <= 65536:
        raise RnngenError(f"--batch-size must be between 1 and 65536, got {batch_size}")


def measure(path, model, tokenizer, provenance, device, data=None, max_lag: int = 200,
            positions: int = 256, batch_size: int = 64) -> GradientResult:  # fmt: skip
    """A checkpoint's gradient flow on `data` (default: its held-out split)."""
    import time

    from rnngen.plot.runs import describe_checkpoint
    from rnngen.scoring.baseline import CheckpointData

    ids, heldout = CheckpointData(provenance, tokenizer).heldout_ids(data, "measure")
    started = time.perf_counter()
    flow = gradient_flow(model, ids, device, max_lag, positions, batch_size)
    seconds = time.perf_counter() - started
    label = describe_checkpoint(path)[0]
    return GradientResult(path, label, heldout.source, len(ids), seconds, flow)
