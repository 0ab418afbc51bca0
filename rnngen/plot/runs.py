"""What a training run left on disk, read back for plotting (numpy only; never prints).

A run is a checkpoint `NAME.safetensors` and the `NAME.metrics.jsonl` its training wrote: one
JSON object a line, `{"event": "step", ...}` every --log-every steps (loss in nats per token,
gradient norm before clipping, learning rate, training seconds) and `{"event": "eval", ...}`
at every evaluation (validation loss and bits per character). Either file names the run.

A killed run leaves a truncated last line, and a run resumed after a kill repeats the steps
since its last save; a rollback after a loss explosion does the same inside one run. Reading
keeps what is whole: lines that are not JSON objects are skipped and counted, and when the
step count goes back, the records of the undone steps are dropped and the step is marked,
so every curve is the history of the weights the run ended with.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnngen.errors import RnngenError, parse_json
from rnngen.metrics import LN2
from rnngen.run_paths import METRICS_SUFFIX, SUFFIX, eval_path, run_of


@dataclass
class Run:
    """One run's curves, each an array over its logged steps or its evaluations."""

    name: str  # the file stem, e.g. "corpus"
    label: str  # the configuration, e.g. "lstm 1x512 bpe1024"
    step: np.ndarray  # (S,) logged step numbers
    loss: np.ndarray  # (S,) training loss, nats per token
    grad_norm: np.ndarray  # (S,) before clipping
    lr: np.ndarray  # (S,)
    seconds: np.ndarray  # (S,) training seconds, evaluations excluded
    eval_step: np.ndarray  # (E,)
    eval_bpc: np.ndarray  # (E,) validation bits per character
    eval_seconds: np.ndarray  # (E,) training seconds when the evaluation ran
    clip: float | None = None  # the gradient-norm bound, when the checkpoint says
    clipped_share: float | None = None  # share of all steps clipped, from the last record
    rollbacks: list[int] = field(default_factory=list)  # steps the run went back to
    references: dict[str, float] = field(default_factory=dict)  # name -> bits per character
    skipped_lines: int = 0  # lines that were not whole JSON records
    chars_per_token: float | None = None  # from the evaluations: nats/token vs bits/char

    @property
    def train_bpc(self) -> np.ndarray | None:
        """The training loss in bits per character, comparable across tokenizers."""
        if not self.chars_per_token:
            return None
        return self.loss / (LN2 * self.chars_per_token)


def run_files(path: Path) -> tuple[Path | None, Path]:
    """(checkpoint or None, metrics file) of the run that `path` names."""
    path = Path(path)
    if not path.exists():
        raise RnngenError(f"{str(path)!r} does not exist")
    if path.is_dir():
        raise RnngenError(f"{str(path)!r} is a directory; give a checkpoint or a metrics file")
    names = run_of(path)
    if names is not None and path.name.endswith(METRICS_SUFFIX):
        checkpoint = names[0]
        return (checkpoint if checkpoint.is_file() else None), path
    if names is not None:
        checkpoint, metrics = names
        if not metrics.is_file():
            raise RnngenError(
                f"{str(path)!r} has no metrics file next to it ({metrics.name}); plot needs "
                "the NAME.metrics.jsonl that rnngen train writes"
            )
        return (checkpoint if checkpoint.is_file() else None), metrics
    raise RnngenError(
        f"{str(path)!r} is not a run: give a checkpoint (.safetensors) or its .metrics.jsonl"
    )


def read_records(path: Path) -> tuple[list[dict], int]:
    """The whole JSON objects of a metrics file, and how many lines were not."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RnngenError(f"{str(path)!r} is not a metrics file (not UTF-8 text)") from None
    except OSError as e:
        raise RnngenError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    records, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = parse_json(line, "a metrics line")
        except RnngenError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            records.append(record)
        else:
            skipped += 1
    if not any(r["event"] in ("step", "eval") for r in records):
        raise RnngenError(f"{str(path)!r} is not a metrics file: no step or eval records")
    return records, skipped


def _numbers(record: dict, *keys: str) -> tuple[float, ...] | None:
    values = tuple(record.get(k) for k in keys)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return tuple(float(v) for v in values)
    return None


def _history(records: list[dict]) -> tuple[list[tuple], list[tuple], list[int], int]:
    """Step rows (step, loss, norm, lr, seconds), eval rows (step, bpc, vloss), rollbacks
    and unusable records, with the records of undone steps removed."""
    steps: list[tuple] = []
    evals: list[tuple] = []
    rollbacks: list[int] = []
    bad = 0
    for record in records:
        event = record["event"]
        if event == "rollback" and _numbers(record, "step"):
            rollbacks.append(int(record["step"]))
            continue
        if event == "step":
            row = _numbers(record, "step", "loss", "grad_norm", "lr", "elapsed")
            if row is None:
                bad += 1
                continue
            if steps and row[0] <= steps[-1][0]:  # the run went back: drop the undone steps
                steps = [s for s in steps if s[0] < row[0]]
                evals = [e for e in evals if e[0] < row[0]]
                if not rollbacks or rollbacks[-1] != int(row[0]):
                    rollbacks.append(int(row[0]))
            steps.append(row)
        elif event == "eval":
            row = _numbers(record, "step", "valid_bpc", "valid_loss")
            if row is None:
                bad += 1
                continue
            evals = [e for e in evals if e[0] < row[0]]
            evals.append(row)
    return steps, evals, sorted(set(rollbacks)), bad


def _eval_seconds(eval_steps: np.ndarray, step: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Training seconds at each evaluation, interpolated between logged steps (step 0 is at
    0 s); beyond the last logged step, extrapolated at the run's mean rate."""
    xs, ys = np.concatenate([[0.0], step]), np.concatenate([[0.0], seconds])
    out = np.interp(eval_steps, xs, ys)
    if len(step) and step[-1] > 0:
        beyond = eval_steps > step[-1]
        out[beyond] = eval_steps[beyond] * seconds[-1] / step[-1]
    return out


def load_run(path: Path) -> Run:
    """Read the run that `path` names: its metrics, and its configuration and any cached
    eval references from the checkpoint's files."""
    checkpoint, metrics = run_files(path)
    records, skipped = read_records(metrics)
    steps, evals, rollbacks, bad = _history(records)
    s = np.array(steps, dtype=np.float64).reshape(-1, 5)  # (S, 5)
    e = np.array(evals, dtype=np.float64).reshape(-1, 3)  # (E, 3)
    name = metrics.name[: -len(METRICS_SUFFIX)]
    label, clip = name, None
    if checkpoint is not None:
        label, clip = describe_checkpoint(checkpoint)
    shares = [r["clipped_share"] for r in records if r["event"] == "step" and
              isinstance(r.get("clipped_share"), int | float)]  # fmt: skip
    run = Run(
        name=name, label=label, step=s[:, 0], loss=s[:, 1], grad_norm=s[:, 2], lr=s[:, 3],
        seconds=s[:, 4], eval_step=e[:, 0], eval_bpc=e[:, 1],
        eval_seconds=_eval_seconds(e[:, 0], s[:, 0], s[:, 4]), clip=clip,
        clipped_share=float(shares[-1]) if shares else None, rollbacks=rollbacks,
        references=eval_references(eval_path(metrics.with_name(name + SUFFIX))),
        skipped_lines=skipped + bad,
    )  # fmt: skip
    usable = (e[:, 1] > 0) & np.isfinite(e[:, 1]) & np.isfinite(e[:, 2])
    if usable.any():
        run.chars_per_token = float(np.median(e[usable, 2] / (LN2 * e[usable, 1])))
    return run


def describe_checkpoint(path: Path) -> tuple[str, float | None]:
    """A label such as "lstm 1x512 bpe1024, residual" and the clip bound, from the header."""
    from rnngen.checkpoint import read_meta

    meta = read_meta(path)
    model = json.loads(meta["model_config"])
    train = json.loads(meta.get("train_config", "{}"))
    kind = meta["tokenizer_kind"]
    label = f"{model['cell']} {model['layers']}x{model['hidden_size']} "
    if model.get("model") == "window":
        label = f"window {model.get('window')} {model['layers']}x{model['hidden_size']} "
    label += kind if kind == "char" else f"{kind}{model['vocab_size']}"
    clip = train.get("clip")
    clip = float(clip) if isinstance(clip, int | float) and not isinstance(clip, bool) else None
    if model.get("residual"):
        label += ", residual"
    elif model.get("skip") in ("highway", "dense"):
        label += f", {model['skip']}"
    if clip == 0:
        label += ", no clipping"
    return label, clip


def eval_references(path: Path) -> dict[str, float]:
    """Reference lines from `NAME.eval.json` (the `rnngen eval --json` report), when eval
    cached one: the n-gram's bits per character and, on the built-in corpus, the oracle's."""
    try:
        report = parse_json(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ValueError, RnngenError):
        return {}
    references = {}
    rows = report.get("rows") if isinstance(report, dict) else None
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            continue
        value = row.get("bits_per_char")
        if not isinstance(value, int | float) or not math.isfinite(value):
            continue
        if row["name"].startswith(("kneser-ney", "oracle")):
            references[row["name"]] = float(value)
    return references


def unique_labels(runs: list[Run]) -> None:
    """Runs that share a configuration are told apart by their names."""
    labels = [r.label for r in runs]
    for run in runs:
        if labels.count(run.label) > 1:
            run.label = f"{run.label} ({run.name})"
