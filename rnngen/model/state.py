"""The recurrent state: its two layouts, its shape for a config, and its flat form on disk.

The state comes in two layouts: the sequence pass's (per layer a (1, B, H) tensor, or an
LSTM's pair of them: `nn.LSTM`'s own), and the one-token step's (the same without the leading
1: what `torch.lstm_cell` & co. take). `step_state` and `sequence_state` convert. The window
model's state is one such entry (its last window - 1 embeddings), so every helper serves it too.
"""

from __future__ import annotations

import torch

from rnngen.config import ModelConfig

# Per layer: (h, c) for an LSTM, h alone otherwise; each (1, B, H).
State = list


def detach_state(state: State | None) -> State | None:
    """Cut the graph between windows (truncated BPTT) but keep the values."""
    return _map_state(state, torch.Tensor.detach)


def reset_rows(state: State | None, rows: list[int]) -> State | None:
    """The state with the given batch rows set back to zero (a fresh start for those streams)."""
    if state is None or not rows:
        return state

    def zeroed(tensor: torch.Tensor) -> torch.Tensor:  # (1, B, H)
        tensor = tensor.clone()
        tensor[:, rows] = 0
        return tensor

    return [tuple(map(zeroed, st)) if isinstance(st, tuple) else zeroed(st) for st in state]


def state_layout(config: ModelConfig) -> list[tuple[int, ...]]:
    """The widths of the state's tensors, per layer: (H, H) for an LSTM's (h, c), (H,) for a
    GRU or tanh RNN; the window model's single entry holds its last window - 1 embeddings."""
    if config.model == "window":
        return [((config.window - 1) * config.embed_size,)]
    widths = (config.hidden_size,) * (2 if config.cell == "lstm" else 1)
    return [widths] * config.layers


def group_state(tensors: list[torch.Tensor], layout: list[tuple[int, ...]]) -> State:
    """Flat tensors, in layout order -> the state: a tuple per layer of several, else one."""
    state, at = [], 0
    for widths in layout:
        parts = tuple(tensors[at : at + len(widths)])
        state.append(parts if len(widths) > 1 else parts[0])
        at += len(widths)
    return state


def step_state(state: State | None) -> State | None:
    """The sequence layout (1, B, H) -> the step layout (B, H)."""
    return _map_state(state, lambda t: t[0])


def sequence_state(state: State | None) -> State | None:
    """The step layout (B, H) -> the sequence layout (1, B, H)."""
    return _map_state(state, lambda t: t.unsqueeze(0))


def _map_state(state: State | None, fn) -> State | None:
    if state is None:
        return None
    return [tuple(map(fn, st)) if isinstance(st, tuple) else fn(st) for st in state]


def state_tensors(state: State | None) -> dict[str, torch.Tensor]:
    """Flatten a state to named tensors (for the resume file)."""
    out = {}
    for i, st in enumerate(state or []):
        parts = st if isinstance(st, tuple) else (st,)
        for j, tensor in enumerate(parts):
            out[f"state.{i}.{j}"] = tensor.detach().float().cpu().contiguous()
    return out


def state_from_tensors(tensors: dict[str, torch.Tensor], cell: str, device) -> State | None:
    """The inverse of `state_tensors`: a tuple for a layer saved in several parts (an LSTM's
    h and c), one tensor otherwise (whatever the model; `cell` is not needed to tell)."""
    parts: dict[int, list[int]] = {}
    for key in tensors:
        if key.startswith("state."):
            _, layer, part = key.split(".")
            parts.setdefault(int(layer), []).append(int(part))
    state = []
    for i in sorted(parts):
        layer = tuple(tensors[f"state.{i}.{j}"].to(device) for j in sorted(parts[i]))
        state.append(layer if len(layer) > 1 else layer[0])
    return state or None
