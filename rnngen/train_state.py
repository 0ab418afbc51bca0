"""The optimizer's state as flat named tensors, for the resume file.

safetensors holds a flat dict of tensors, while an optimizer's state_dict nests them per
parameter index; these two functions translate, so resuming never needs pickle.
"""

from __future__ import annotations

import torch


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """{"optim.<param index>.<name>": tensor} for every per-parameter moment (and step)."""
    tensors = {}
    for index, moments in optimizer.state_dict()["state"].items():
        for name, value in moments.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    return tensors


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], device: torch.device
) -> None:
    """The inverse of `optimizer_tensors`; the param groups (lr, betas) stay as configured."""
    state_dict = optimizer.state_dict()
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value.to(device)
    for moments in state.values():  # AdamW keeps `step` on the CPU
        if "step" in moments:
            moments["step"] = moments["step"].cpu()
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)
