"""A model taken elsewhere: `export` (ONNX files), `neighbors` (its embedding's nearest pieces)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rnngen.api.language_model import LanguageModel, load


def export(
    checkpoint: str | Path | None = None,
    output: str | Path | None = None,
    *,
    format: str = "onnx",
    window: bool = True,
    data: str | Path | None = None,
    verify_tokens: int = 1024,
):
    """What `rnngen export` does: the checkpoint (the newest in ./checkpoints when None) as
    ONNX models, the tokenizer and model.json in `output` (default export/CHECKPOINT-NAME),
    written once onnxruntime reproduces torch's log-probabilities on `data` (default: the
    checkpoint's held-out text). Returns the ExportResult (files, sizes, verification)."""
    from rnngen.checkpoint import latest_checkpoint
    from rnngen.onnx_export import check_format, export_checkpoint

    check_format(format)
    path = Path(checkpoint) if checkpoint is not None else latest_checkpoint()
    output = Path(output) if output is not None else Path("export") / path.stem
    return export_checkpoint(path, output, format=format, window=window, data=data,
                             verify_tokens=verify_tokens)  # fmt: skip


def neighbors(model_or_checkpoint: LanguageModel | str | Path | None, words: Iterable[str],
              *, k: int = 10) -> list:  # fmt: skip
    """What `rnngen neighbors` does: each word's k nearest pieces by cosine similarity in the
    input embedding (a word in several pieces: their mean, `averaged` says so)."""
    lm = model_or_checkpoint
    if not isinstance(lm, LanguageModel):
        lm = load(lm, "cpu")
    return lm.neighbors(words, k)
