"""The resume file: NAME.state.safetensors (format rnngen-state/1), what `--resume` needs.

It holds optimizer tensors, RNG states, the carried hidden state (resume.py turns the
optimizer's state into flat tensors), and the step/data position/best loss as JSON. Like a
model file it holds tensors and strings only, and every write is atomic. `load_state`
checks the info field by field, so a damaged or crafted file is one RnngenError; the Trainer
checks the tensors against the model and optimizer they must fit (resume.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from rnngen.checkpoint import STATE_FORMAT, atomic_write
from rnngen.config import ModelConfig, from_json
from rnngen.errors import RnngenError, parse_json
from rnngen.run_paths import state_path


def save_state(path: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": STATE_FORMAT, "info": json.dumps(info)}
    atomic_write(state_path(path), save_bytes(tensors, metadata=meta))


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The resume file's tensors and info, the info checked field by field (the Trainer
    checks the tensors against the model and optimizer they must fit)."""
    spath = state_path(path)
    if not spath.exists():
        raise RnngenError(f"nothing to resume: {str(spath)!r} does not exist")
    try:
        data = spath.read_bytes()
        with safe_open(str(spath), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        info = parse_json(meta["info"], "the info")
        validate_state_info(info)
        return load_bytes(data), info
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RnngenError) as e:
        raise RnngenError(f"{str(spath)!r} is not a readable rnngen resume file ({e})") from None


# The resume info's fields: (JSON types, may be null, smallest value); the optional ones
# are absent from files written by older versions.
_COUNT, _NUMBER = (int,), (int, float)
STATE_INFO = {
    "step": (_COUNT, False, 0),
    "epoch": (_COUNT, False, 0),
    "position": (_COUNT, False, 0),
    "elapsed": (_NUMBER, False, 0),
    "best_loss": (_NUMBER, True, None),
    "lr_scale": (_NUMBER, False, 0),
    "clipped_steps": (_COUNT, False, 0),
    "next_eval": (_COUNT, False, 0),
    "batch_size": (_COUNT, False, 1),
    "model_config": ((str,), False, None),
    "tokenizer_sha256": ((str,), False, None),
}
OPTIONAL_STATE_INFO = {
    "rollbacks": (_COUNT, False, 0),
    "loss_average": (_NUMBER, True, None),
    "world_size": (_COUNT, False, 1),
    "scaler": ((dict,), True, None),
    "train_config": ((str,), False, None),
}


def validate_state_info(info) -> None:
    """Raise ValueError unless `info` has every field resuming reads, each of its type."""
    if not isinstance(info, dict):
        raise ValueError("the info is not a JSON object")
    for fields, required in ((STATE_INFO, True), (OPTIONAL_STATE_INFO, False)):
        for key, (types, nullable, low) in fields.items():
            if key not in info:
                if required:
                    raise ValueError(f"no {key!r}")
                continue
            value = info[key]
            if value is None and nullable:
                continue
            if not isinstance(value, types) or isinstance(value, bool):
                raise ValueError(f"{key!r} is {value!r}")
            if types is _NUMBER and not math.isfinite(value):
                raise ValueError(f"{key!r} is {value!r}")
            if low is not None and value < low:
                raise ValueError(f"{key!r} is {value!r}, below {low}")
    if info["lr_scale"] <= 0:
        raise ValueError(f"'lr_scale' is {info['lr_scale']!r}")
    from_json(ModelConfig, info["model_config"])
    scaler = info.get("scaler")
    if scaler is not None:
        names = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        for name in names:
            value = scaler.get(name)
            if not isinstance(value, _NUMBER) or isinstance(value, bool):
                raise ValueError(f"scaler {name!r} is {value!r}")
