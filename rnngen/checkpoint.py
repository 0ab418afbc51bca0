"""Checkpoints: one self-contained .safetensors file per model, plus a resume file.

`NAME.safetensors` holds fp32 weights and string metadata: `format` (rnngen/1), the model
and training configs as JSON, the tokenizer (serialized SentencePiece proto, base64, with its
sha256), metrics, provenance and versions: everything `sample`, `score` and `eval` need.
`NAME.state.safetensors` holds what `--resume` needs: optimizer tensors, RNG states, the
carried hidden state, and the step/data position/best loss as JSON.

safetensors holds tensors and strings only, so loading a checkpoint can never run code (no
pickle anywhere). Every write goes to a temporary file in the same directory, is fsynced,
and replaces the target with `os.replace`, so an interruption leaves the previous good
file in place.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from rnngen import __version__
from rnngen.config import ModelConfig, from_json, to_json
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.tokenizer import Tokenizer, load_tokenizer

FORMAT = "rnngen/1"
STATE_FORMAT = "rnngen-state/1"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise RnngenError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
        raise


def state_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name.replace(".safetensors", "") + ".state.safetensors")


def metrics_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name.replace(".safetensors", "") + ".metrics.jsonl")


def save_model(path: Path, model: RNNLM, tokenizer: Tokenizer, metadata: dict[str, object]) -> None:
    """Save weights (fp32, on the CPU) and metadata; values that are not strings go as JSON."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_config": to_json(model.config),
        "tokenizer": base64.b64encode(tokenizer.proto).decode(),
        "tokenizer_sha256": tokenizer.sha256,
        "tokenizer_kind": tokenizer.kind,
        "versions": json.dumps({"rnngen": __version__, "torch": torch.__version__}),
    }
    for key, value in metadata.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    atomic_write(path, save_bytes(tensors, metadata=meta))


def read_meta(path: Path) -> dict[str, str]:
    """The string metadata of a checkpoint, without loading its tensors."""
    path = _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise RnngenError(f"{str(path)!r} is not a readable safetensors checkpoint ({e})") from None
    if meta.get("format") == STATE_FORMAT:
        model = str(path).replace(".state.safetensors", ".safetensors")
        raise RnngenError(f"{str(path)!r} is a resume file, not a model; use {model!r}")
    if meta.get("format") != FORMAT:
        raise RnngenError(
            f"{str(path)!r} is not an rnngen checkpoint (format {meta.get('format')!r})"
        )
    return meta


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[RNNLM, Tokenizer, dict]:
    """Rebuild the model and tokenizer from a checkpoint, on any device."""
    meta = read_meta(path)
    try:
        config = from_json(ModelConfig, meta["model_config"])
        proto = base64.b64decode(meta["tokenizer"])
        if hashlib.sha256(proto).hexdigest() != meta["tokenizer_sha256"]:
            raise ValueError("the tokenizer does not match its sha256")
        tensors = load_bytes(Path(path).read_bytes())
        model = RNNLM(config)
        model.load_state_dict(tensors)
    except (KeyError, ValueError, RuntimeError, SafetensorError) as e:
        raise RnngenError(f"{str(path)!r} is a damaged rnngen checkpoint ({e})") from None
    tokenizer = load_tokenizer(proto, meta["tokenizer_kind"])
    return model.to(device).eval(), tokenizer, meta


def json_field(meta: dict[str, str], key: str, default=None):
    value = meta.get(key)
    return default if value is None else json.loads(value)


def save_state(path: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": STATE_FORMAT, "info": json.dumps(info)}
    atomic_write(state_path(path), save_bytes(tensors, metadata=meta))


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    spath = state_path(path)
    if not spath.exists():
        raise RnngenError(f"nothing to resume: {str(spath)!r} does not exist")
    try:
        data = spath.read_bytes()
        with safe_open(str(spath), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        return load_bytes(data), json.loads(meta["info"])
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise RnngenError(f"{str(spath)!r} is not a readable rnngen resume file ({e})") from None


def latest_checkpoint(directory: Path = Path("checkpoints")) -> Path:
    """The newest model checkpoint in `directory` (resume files are not models)."""
    candidates = [
        p
        for p in Path(directory).glob("*.safetensors")
        if not p.name.endswith(".state.safetensors") and not p.name.startswith(".")
    ]
    if not candidates:
        raise RnngenError(
            f"no checkpoint given and none found in {str(directory)!r}; run rnngen train first"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def _check_exists(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise RnngenError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        raise RnngenError(f"{str(path)!r} is a directory, not a checkpoint file")
    return path
