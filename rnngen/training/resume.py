"""The Trainer's resume state: the optimizer's state as flat named tensors, the check that a
resume file's tensors fit the run before any of them is used, and `Resumable`, the Trainer's
methods that gather its state for the resume file and load it back.

safetensors holds a flat dict of tensors, while an optimizer's state_dict nests them per
parameter index; `optimizer_tensors` and `load_optimizer_tensors` translate, so resuming never
needs pickle. The file itself is written and read by resume_file.py.
"""

from __future__ import annotations

import math
import re

import torch

from rnngen.adaptive import is_permutation
from rnngen.errors import RnngenError
from rnngen.model import state_from_tensors, state_layout, state_tensors

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


class Resumable:
    """The Trainer's side of the resume file (a base of loop.py's Trainer, whose counters,
    model, optimizer and group it reads and sets): `resume_state` is what the run saves,
    `_load` puts it back, checked first by `check_resume_tensors`."""

    def resume_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.average is not None:
            tensors.update({f"average.{k}": v for k, v in self.average.state_dict().items()})
        tensors.update(optimizer_tensors(self.optimizer))
        own = {"rng.cpu": torch.get_rng_state()}  # what differs between ranks
        if self.device.type == "cuda":
            own["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        own.update(state_tensors(self.hidden))
        tensors.update(self.group.gather_tensors(own))  # several ranks: rank{K}.rng.cpu, ...
        info = {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "elapsed": self.elapsed,
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "lr_scale": self.lr_scale,
            "clipped_steps": self.clipped_steps,
            "next_eval": self.next_eval,
            "rollbacks": self.rollbacks,
            "loss_average": self._loss_average,
            "batch_size": self.config.batch_size,
            "world_size": self.group.world_size,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }
        return tensors, info

    def _load(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        if info.get("batch_size") != self.config.batch_size:
            raise RnngenError(
                f"--resume needs the same --batch-size as the run it continues "
                f"({info.get('batch_size')})"
            )
        saved_world = info.get("world_size", 1)
        if saved_world != self.group.world_size:
            raise RnngenError(
                f"--resume needs the same number of processes as the run it continues "
                f"({saved_world}); this run has {self.group.world_size}"
            )
        own = self.group.own_tensors(tensors)
        local_batch = self.stream_range[1] - self.stream_range[0]
        cuda = self.device.type == "cuda"
        check_resume_tensors(tensors, own, self.model, self.optimizer, local_batch, cuda)
        if not 0 <= info["position"] <= self.streams.shape[1] - 1:
            raise RnngenError(
                f"--resume: the saved data position {info['position']} is beyond this "
                f"corpus's {self.streams.shape[1] - 1} tokens per stream"
            )
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(weights)
        average = {k[8:]: v.to(self.device) for k, v in tensors.items() if k.startswith("average.")}
        if average:
            self._start_average(average)
        load_optimizer_tensors(self.optimizer, tensors, self.device)
        torch.set_rng_state(own["rng.cpu"])
        if self.device.type == "cuda" and "rng.cuda" in own:
            torch.cuda.set_rng_state(own["rng.cuda"], self.device)
        self.hidden = state_from_tensors(own, self.model.config.cell, self.device)
        self.step, self.epoch, self.position = info["step"], info["epoch"], info["position"]
        self.elapsed, self.lr_scale = info["elapsed"], info["lr_scale"]
        self.best_loss = math.inf if info["best_loss"] is None else info["best_loss"]
        self.clipped_steps, self.next_eval = info["clipped_steps"], info["next_eval"]
        self.rollbacks = info.get("rollbacks", 0)
        self._loss_average = info.get("loss_average")
        if info.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(info["scaler"])
