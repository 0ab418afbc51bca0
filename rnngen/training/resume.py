"""The optimizer's state as flat named tensors, for the resume file, and the check that a
resume file's tensors fit the run before any of them is used.

safetensors holds a flat dict of tensors, while an optimizer's state_dict nests them per
parameter index; these two functions translate, so resuming never needs pickle.
"""

from __future__ import annotations

import re

import torch

from rnngen.adaptive import is_permutation
from rnngen.errors import RnngenError
from rnngen.model import state_layout

ADAM_MOMENTS = ("exp_avg", "exp_avg_sq", "step")
_OPTIM_KEY = re.compile(r"optim\.(\d{1,9})\.(\w+)")


def check_resume_tensors(
    tensors: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    local_batch: int,
    cuda: bool,
) -> None:
    """Raise RnngenError unless the resume tensors fit this model, optimizer and batch.

    `own` is this rank's share (RNG, hidden state). Nothing is loaded before this passes, so
    a damaged or crafted resume file is one line, never a traceback half-way through.
    """

    def bad(reason: str) -> RnngenError:
        return RnngenError(f"--resume: the resume file does not fit this run ({reason})")

    def check(name: str, tensor, shape, dtype=torch.float32) -> None:
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(shape):
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise bad(f"{name!r} has shape {got}, not {tuple(shape)}")
        if tensor.dtype != dtype:
            raise bad(f"{name!r} is {tensor.dtype}, not {dtype}")
        if dtype == torch.float32 and not torch.isfinite(tensor).all():
            raise bad(f"{name!r} holds NaN or infinite values")

    def check_weights(prefix: str, expected: dict[str, torch.Tensor]) -> None:
        saved = {k[len(prefix) :] for k in tensors if k.startswith(prefix)}
        if saved != set(expected):
            missing, extra = sorted(set(expected) - saved), sorted(saved - set(expected))
            raise bad(f"weights missing {missing[:3]}, unexpected {extra[:3]}")
        for name, tensor in expected.items():
            check(prefix + name, tensors[prefix + name], tensor.shape, tensor.dtype)
            if name.endswith("ids_by_rank") and not is_permutation(tensors[prefix + name]):
                raise bad(f"{prefix + name!r} is not a permutation of the vocabulary")

    weights = model.state_dict()
    check_weights("model.", weights)
    if any(k.startswith("average.") for k in tensors):  # the weight average (--average)
        expected = {f"module.{k}": v for k, v in weights.items()}
        expected["n_averaged"] = torch.zeros((), dtype=torch.long)
        check_weights("average.", expected)

    params = [p for group in optimizer.param_groups for p in group["params"]]
    moments: dict[int, set[str]] = {}
    for key in tensors:
        if not key.startswith("optim."):
            continue
        match = _OPTIM_KEY.fullmatch(key)
        if not match or int(match[1]) >= len(params) or match[2] not in ADAM_MOMENTS:
            raise bad(f"unknown optimizer tensor {key!r}")
        index, name = int(match[1]), match[2]
        moments.setdefault(index, set()).add(name)
        shape = () if name == "step" else params[index].shape
        check(key, tensors[key], shape)
    for index, names in moments.items():
        if names != set(ADAM_MOMENTS):
            raise bad(f"optimizer state {index} has only {sorted(names)}")

    if "rng.cpu" not in own:
        raise bad("no 'rng.cpu'")
    check("rng.cpu", own["rng.cpu"], torch.get_rng_state().shape, torch.uint8)
    if cuda and "rng.cuda" in own:
        check("rng.cuda", own["rng.cuda"], torch.cuda.get_rng_state().shape, torch.uint8)

    states = {k for k in own if k.startswith("state.")}
    if states:
        widths = {f"state.{i}.{j}": width for i, layer in enumerate(state_layout(model.config))
                  for j, width in enumerate(layer)}  # fmt: skip
        if states != set(widths):
            raise bad(f"hidden state tensors {sorted(states)[:4]} do not fit the model")
        for key in sorted(states):
            check(key, own[key], (1, local_batch, widths[key]))


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
