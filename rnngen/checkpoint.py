"""Checkpoints: one self-contained .safetensors file per model.

`NAME.safetensors` holds fp32 weights and string metadata: `format` (rnngen/1), the model
and training configs as JSON, the tokenizer (serialized SentencePiece proto, base64, with its
sha256), metrics, provenance and versions: everything `sample`, `score` and `eval` need.
A run's resume file (`NAME.state.safetensors`, format rnngen-state/1) is written and read by
rnngen/training/resume_file.py, and its output lock is in rnngen/training/files.py; this
module knows the resume file's format only to name it when one is given as a model.

safetensors holds tensors and strings only, so loading a checkpoint can never run code (no
pickle anywhere). Every write goes through rnngen.atomic (a temporary file in the same
directory, fsynced, then `os.replace`), so an interruption leaves the previous good file in
place.

Loading validates the whole header once, here (`read_meta`): every field the commands read,
its JSON type, the configs, the tokenizer and its hash, and the tensors' names, shapes and
dtypes against the model the config describes, before anything is allocated or used; then
the weights must be finite. A damaged or crafted file is one RnngenError, never a traceback
or a model that samples garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from rnngen import __version__
from rnngen.adaptive import is_permutation
from rnngen.atomic import describe, write_bytes
from rnngen.config import TOKENIZER_KINDS, ModelConfig, from_json, to_json
from rnngen.corpus.tokenizer import Tokenizer, load_tokenizer
from rnngen.errors import RnngenError, parse_json
from rnngen.model import RNNLM, create_model
from rnngen.run_paths import metrics_path, state_path  # noqa: F401 (re-exported)

FORMAT = "rnngen/1"
STATE_FORMAT = "rnngen-state/1"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    write_bytes(path, data)


def save_model(path: Path, model: RNNLM, tokenizer: Tokenizer, metadata: dict[str, object]) -> None:
    """Save weights (fp32, on the CPU; an adaptive softmax's token order int64) and metadata;
    values that are not strings go as JSON."""
    tensors = {
        k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
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


# Metadata fields that hold a JSON object when present.
JSON_OBJECTS = ("metrics", "provenance", "versions", "train_config", "init_from")


def read_meta(path: Path) -> dict[str, str]:
    """The string metadata of a checkpoint, validated whole, without loading its tensors."""
    return _read_checked(path)[0]


def _read_checked(path: Path) -> tuple[dict[str, str], ModelConfig, bytes]:
    path = _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            names = f.keys()  # noqa: SIM118 (safe_open is no mapping)
            layout = {key: (f.get_slice(key).get_dtype(), f.get_slice(key).get_shape())
                      for key in names}  # fmt: skip
    except (SafetensorError, OSError, ValueError) as e:
        raise RnngenError(f"{str(path)!r} is not a readable safetensors checkpoint ({e})") from None
    if meta.get("format") == STATE_FORMAT:
        model = str(path).replace(".state.safetensors", ".safetensors")
        raise RnngenError(f"{str(path)!r} is a resume file, not a model; use {model!r}")
    if meta.get("format") != FORMAT:
        raise RnngenError(
            f"{str(path)!r} is not an rnngen checkpoint (format {meta.get('format')!r})"
        )
    try:
        config, proto = validate_meta(meta, layout)
    except RnngenError as e:
        raise RnngenError(f"{str(path)!r} is a damaged rnngen checkpoint ({e})") from None
    return meta, config, proto


def validate_meta(
    meta: dict[str, str], layout: dict[str, tuple[str, list[int]]]
) -> tuple[ModelConfig, bytes]:
    """Check every header field the commands read, and the tensor layout the model config
    implies (names, shapes, fp32), allocating nothing; return the config and tokenizer."""
    for key in ("model_config", "tokenizer", "tokenizer_sha256", "tokenizer_kind"):
        if not isinstance(meta.get(key), str):
            raise RnngenError(f"no {key}")
    config = from_json(ModelConfig, meta["model_config"])
    if meta["tokenizer_kind"] not in TOKENIZER_KINDS:
        raise RnngenError(f"unknown tokenizer_kind {meta['tokenizer_kind']!r}")
    try:
        proto = base64.b64decode(meta["tokenizer"], validate=True)
    except (binascii.Error, ValueError):
        raise RnngenError("the tokenizer is not base64") from None
    if not proto:
        raise RnngenError("the tokenizer is empty")
    if hashlib.sha256(proto).hexdigest() != meta["tokenizer_sha256"]:
        raise RnngenError("the tokenizer does not match its sha256")
    for key in JSON_OBJECTS:
        if key in meta:
            parse_json(meta[key], key, object_only=True)
    with torch.device("meta"):  # shapes only: a crafted huge config allocates nothing
        expected = create_model(config).state_dict()
    if set(layout) != set(expected):
        missing, extra = sorted(set(expected) - set(layout)), sorted(set(layout) - set(expected))
        raise RnngenError(f"the weights do not fit the model (missing {missing}, extra {extra})")
    for key, (dtype, shape) in layout.items():
        want = "F32" if expected[key].is_floating_point() else "I64"
        if dtype != want or list(shape) != list(expected[key].shape):
            raise RnngenError(
                f"weight {key!r} is {dtype} {list(shape)}; the model needs {want} "
                f"{list(expected[key].shape)}"
            )
    return config, proto


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[RNNLM, Tokenizer, dict]:
    """Rebuild the model and tokenizer from a checkpoint, on any device."""
    meta, config, proto = _read_checked(path)

    def damaged(reason: str) -> RnngenError:
        return RnngenError(f"{str(path)!r} is a damaged rnngen checkpoint ({reason})")

    try:
        tensors = load_bytes(Path(path).read_bytes())
        model = create_model(config)
        model.load_state_dict(tensors)
    except (KeyError, ValueError, RuntimeError, SafetensorError, OSError) as e:
        raise damaged(str(e)) from None
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise damaged(f"weight {key!r} holds NaN or infinite values")
        if key.endswith("ids_by_rank") and not is_permutation(tensor):
            raise damaged(f"{key!r} is not a permutation of the vocabulary")
    try:
        tokenizer = load_tokenizer(proto, meta["tokenizer_kind"])
    except RnngenError as e:
        raise damaged(str(e)) from None
    if tokenizer.vocab_size != config.vocab_size:
        raise damaged(
            f"the tokenizer has {tokenizer.vocab_size} pieces, the model {config.vocab_size}"
        )
    return model.to(device).eval(), tokenizer, meta


def json_field(meta: dict[str, str], key: str, default=None):
    value = meta.get(key)
    if value is None:
        return default
    return parse_json(value, f"checkpoint field {key!r}")


def latest_checkpoint(directory: Path = Path("checkpoints")) -> Path:
    """The newest model checkpoint in `directory` (resume files are not models)."""
    candidates = {}
    try:
        paths = list(Path(directory).glob("*.safetensors"))
    except OSError:
        paths = []
    for p in paths:
        if p.name.endswith(".state.safetensors") or p.name.startswith("."):
            continue
        try:  # a dangling symlink or an unreadable entry is no candidate
            if p.is_file():
                candidates[p] = p.stat().st_mtime
        except OSError:
            continue
    if not candidates:
        raise RnngenError(
            f"no checkpoint given and none found in {str(directory)!r}; run rnngen train first"
        )
    return max(candidates, key=candidates.__getitem__)


def file_format(path: Path) -> str | None:
    """The `format` in a safetensors file's header (rnngen/1, rnngen-state/1), or None when
    the file is not safetensors at all: what decides whether --force may replace it."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format")
    except (SafetensorError, OSError, ValueError):
        return None


def _check_exists(path: Path) -> Path:
    """The one check every command that reads a checkpoint makes first: it exists and is a
    regular file (a FIFO would block the read forever, a device never end)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError | NotADirectoryError):
            raise RnngenError(f"cannot read checkpoint {str(path)!r}: {describe(e)}") from None
        raise RnngenError(f"checkpoint {str(path)!r} does not exist") from None
    if stat.S_ISDIR(mode):
        raise RnngenError(f"{str(path)!r} is a directory, not a checkpoint file")
    if not stat.S_ISREG(mode):
        raise RnngenError(f"{str(path)!r} is not a regular file; a checkpoint is a file")
    try:  # safetensors would say "No such file" for a file it may not read
        with open(path, "rb"):
            pass
    except OSError as e:
        raise RnngenError(f"cannot read checkpoint {str(path)!r}: {describe(e)}") from None
    return path
