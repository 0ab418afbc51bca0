"""`rnngen export`: a checkpoint as files that run without torch (ONNX, and the tokenizer).

    result = export_checkpoint("checkpoints/corpus.safetensors", "export/corpus")

writes DIR/step.onnx, DIR/window.onnx, DIR/tokenizer.model and DIR/model.json, after
onnxruntime has reproduced torch's log-probabilities on held-out text (rnngen/onnx_export/
verify.py): nothing is written when it does not. The models are rnngen/onnx_export/models.py's.
`examples/onnx_sample.py` is a runtime that needs numpy, onnxruntime and sentencepiece only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.onnx_export.models import (
    FILES,
    FORMATS,
    OPSET,
    RUNTIME_FORMAT,
    check_format,
    export_models,
    require_packages,
    state_shape,
)
from rnngen.onnx_export.verify import TOLERANCE, Verification, verification_ids, verify

__all__ = [
    "ExportResult",
    "FORMATS",
    "TOLERANCE",
    "export_checkpoint",
    "export_model",
    "runtime_info",
]

VERIFY_TOKENS = 1024  # positions compared by default (each a whole distribution)


@dataclass(frozen=True)
class ExportResult:
    directory: str
    files: dict[str, str]  # role (step, window, tokenizer, runtime) -> path
    sizes: dict[str, int]  # role -> bytes
    runtime: dict  # model.json's content
    verification: Verification

    def as_dict(self) -> dict:
        return {"directory": self.directory, "files": self.files, "sizes": self.sizes,
                "verification": self.verification.as_dict(), "runtime": self.runtime}  # fmt: skip


def export_checkpoint(checkpoint: str | Path, output: str | Path, *, format: str = "onnx",
                      window: bool = True, data: str | Path | None = None,
                      verify_tokens: int = VERIFY_TOKENS) -> ExportResult:  # fmt: skip
    """Export a checkpoint to `output` (a directory, made if need be), verified on `data`
    (a text file) or the checkpoint's held-out text."""
    from rnngen.checkpoint import load_model
    from rnngen.corpus.provenance import checkpoint_provenance

    check_format(format)
    if verify_tokens < 4:
        raise RnngenError(f"--verify-tokens must be at least 4, got {verify_tokens}")
    require_packages()  # before any work
    directory = _writable_dir(Path(output))
    path = Path(checkpoint)
    model, tokenizer, meta = load_model(path, "cpu")
    sha256 = _file_sha256(path)
    provenance = checkpoint_provenance(meta, required=False)
    ids, source = verification_ids(model, tokenizer, provenance,
                                   Path(data) if data is not None else None,
                                   verify_tokens)  # fmt: skip
    return export_model(model, tokenizer, directory, ids, source, window=window,
                        checkpoint_name=path.name, checkpoint_sha256=sha256)  # fmt: skip


def export_model(model: RNNLM, tokenizer, output: str | Path, ids, source: str, *,
                 window: bool = True, checkpoint_name: str = "", checkpoint_sha256: str = ""
                 ) -> ExportResult:  # fmt: skip
    """Export a model in memory, verified on `ids` (a line start first)."""
    from rnngen.atomic import write_bytes, write_text

    directory = _writable_dir(Path(output))
    models = export_models(model, window=window)
    verification = verify(models, model, ids, source)
    files = {role: FILES[role] for role in (*models, "tokenizer", "runtime")}
    runtime = runtime_info(model, tokenizer, checkpoint_sha256, checkpoint_name, files)
    runtime["verification"] = verification.as_dict()
    written = {}
    for role, data in (*models.items(), ("tokenizer", tokenizer.proto)):
        write_bytes(directory / files[role], data)
        written[role] = str(directory / files[role])
    # model.json last: it names the others, so a directory that has it is complete.
    write_text(directory / files["runtime"], json.dumps(runtime, indent=2) + "\n")
    written["runtime"] = str(directory / files["runtime"])
    sizes = {role: os.path.getsize(p) for role, p in written.items()}
    return ExportResult(str(directory), written, sizes, runtime, verification)


def _writable_dir(directory: Path) -> Path:
    """The output directory, made if need be; an error now, before the export's work, when
    nothing can be written there."""
    from rnngen.atomic import describe, temporary_name
    from rnngen.corpus.textio import make_dir

    make_dir(directory, "output directory")
    probe = temporary_name(directory / ".probe")
    try:
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise RnngenError(f"cannot write to {str(directory)!r}: {describe(e)}") from None
    return directory


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_info(model: RNNLM, tokenizer, checkpoint_sha256: str, checkpoint_name: str,
                 files: dict[str, str]) -> dict:  # fmt: skip
    """model.json: everything a runtime needs besides the ONNX files and the tokenizer."""
    from rnngen import __version__

    c = model.config
    layers, parts, hidden = state_shape(c)
    return {
        "format": RUNTIME_FORMAT,
        "checkpoint": {"name": checkpoint_name, "sha256": checkpoint_sha256},
        "model": {
            "cell": c.cell,
            "layers": c.layers,
            "hidden_size": c.hidden_size,
            "embed_size": c.embed_size,
            "softmax": c.softmax,
            "tie": c.tie,
            "residual": c.residual,
        },  # fmt: skip
        "vocab_size": c.vocab_size,
        "line_start_token": tokenizer.newline_id,
        "state": {
            "shape": [layers, parts, "batch", hidden],
            "dtype": "float32",
            "parts": ["h", "c"] if parts == 2 else ["h"],
            "start": "zeros",
        },  # fmt: skip
        "inputs": {
            "tokens": "int64 (batch,) for step, (batch, time) for window",
            "state": "float32, the shape above",
        },  # fmt: skip
        "outputs": {
            "logprobs": "float32 natural-log probabilities of the next token, "
            "(batch, vocab) or (batch, time, vocab)",
            "state_out": "as state",
        },
        "files": dict(files),
        "opset": OPSET,
        "tokenizer": {
            "kind": tokenizer.kind,
            "sha256": tokenizer.sha256,
            "newline_piece": "\n",
            "space_mark": "\u2581",
            "rules": "a prompt starts after line_start_token; a literal U+2581 is "
            "encoded as its three UTF-8 byte pieces; word models encode each line "
            "apart and spell an unknown word's own space mark as a space byte; byte "
            "pieces <0xXX> decode to bytes, the text as UTF-8",
        },  # fmt: skip
        "versions": {"rnngen": __version__, "torch": torch.__version__},
    }
