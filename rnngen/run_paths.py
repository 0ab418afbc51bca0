"""The names of a training run's files, written once (stdlib only).

    NAME.safetensors          the best model (format rnngen/1)
    NAME.state.safetensors    what --resume needs (format rnngen-state/1)
    NAME.metrics.jsonl        every step, evaluation, rollback and sample record
    .NAME.safetensors.lock    the output lock, held while a run owns NAME
    NAME.eval.json            what `rnngen eval` keeps for `rnngen plot` (its n-gram lines)
    NAME.png                  `rnngen plot`'s default image

`-o`'s default is checkpoints/CORPUS-NAME.safetensors (`output_path`).
"""

from __future__ import annotations

from pathlib import Path

from rnngen.errors import RnngenError

SUFFIX = ".safetensors"
STATE_SUFFIX = ".state.safetensors"
METRICS_SUFFIX = ".metrics.jsonl"
EVAL_SUFFIX = ".eval.json"
FIGURE_SUFFIX = ".png"


def _stem(path: Path | str) -> str:
    """NAME, whatever of the run's suffixes the path has (every one, as rnngen always did)."""
    return Path(path).name.replace(SUFFIX, "")


def state_path(path: Path | str) -> Path:
    return Path(path).with_name(_stem(path) + STATE_SUFFIX)


def metrics_path(path: Path | str) -> Path:
    return Path(path).with_name(_stem(path) + METRICS_SUFFIX)


def lock_path(path: Path | str) -> Path:
    return Path(path).with_name(f".{Path(path).name}.lock")


def eval_path(path: Path | str) -> Path:
    """NAME.eval.json beside the checkpoint NAME.safetensors."""
    return Path(path).with_name(Path(path).name.removesuffix(SUFFIX) + EVAL_SUFFIX)


def figure_path(metrics: Path | str) -> Path:
    """NAME.png beside the metrics file NAME.metrics.jsonl."""
    return Path(metrics).with_name(Path(metrics).name.removesuffix(METRICS_SUFFIX) + FIGURE_SUFFIX)


def output_path(corpus: str, output: Path | str | None) -> Path:
    """-o as given (with .safetensors added), or checkpoints/CORPUS-NAME.safetensors."""
    name = "stdin" if corpus == "-" else Path(corpus.rstrip("/")).stem or "corpus"
    if output is not None and Path(output).name in ("", ".", ".."):
        raise RnngenError(f"-o {str(output)!r} is not a file name")
    path = Path(output or Path("checkpoints") / f"{name}{SUFFIX}")
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    return path


def run_of(path: Path | str) -> tuple[Path, Path] | None:
    """(checkpoint, metrics file) of the run a checkpoint, its resume file or its metrics
    file names; None for any other name."""
    path, name = Path(path), Path(path).name
    if name.endswith(METRICS_SUFFIX):
        stem = name[: -len(METRICS_SUFFIX)]
    elif name.endswith(SUFFIX):
        stem = name.removesuffix(SUFFIX).removesuffix(".state")
    else:
        return None
    return path.with_name(stem + SUFFIX), path.with_name(stem + METRICS_SUFFIX)
