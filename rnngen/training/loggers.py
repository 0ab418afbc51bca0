"""A training run sent to TensorBoard and Weights & Biases (`rnngen train --log ...`).

NAME.metrics.jsonl stays the record of truth: the loggers receive the very records the run
writes there (step, eval, rollback, samples) and show them where a team already watches its
runs:

* scalars: training loss, gradient norm before clipping, clipped share, learning rate,
  tokens/s (each logged step); validation loss, bits per character and perplexity (each
  evaluation); the learning-rate scale after a rollback;
* the run's configuration as hyperparameters, rollbacks and samples as text;
* with TensorBoard, at the end, the best checkpoint's input embedding for the projector,
  each row labelled with its piece.

Both are optional extras (`pip install 'rnngen[logging]'`), imported only when asked. A logger
that cannot start (its package is missing, its directory cannot be written, W&B has no way
to its server and WANDB_MODE is not offline) is an RnngenError before any training; one that
fails later is dropped with a warning (`take_warnings`): logging never ends a run.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from rnngen.errors import RnngenError

KINDS = ("tensorboard", "wandb")
DEFAULT_TENSORBOARD_ROOT = Path("runs")  # TensorBoard's convention: runs/NAME
DEFAULT_WANDB_PROJECT = "rnngen"
# metrics.jsonl record -> {field: tag}; tags group as train/... and valid/... in both tools.
SCALARS = {
    "step": {"loss": "train/loss", "grad_norm": "train/grad_norm_before_clip",
             "clipped_share": "train/clipped_share", "lr": "train/learning_rate",
             "tokens_per_second": "train/tokens_per_second"},
    "eval": {"valid_loss": "valid/loss", "valid_bpc": "valid/bits_per_char",
             "valid_ppl": "valid/perplexity"},
    "rollback": {"lr_scale": "train/rollback_lr_scale"},
}  # fmt: skip
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


@dataclass(frozen=True)
class LogSpec:
    kind: str  # tensorboard or wandb
    target: str | None  # tensorboard: the log directory; wandb: the project


def parse_specs(specs) -> list[LogSpec]:
    """`--log tensorboard[:DIR]` and `--log wandb[:PROJECT]`, each at most once."""
    parsed = []
    for spec in specs or ():
        kind, _, target = str(spec).partition(":")
        if kind not in KINDS:
            raise RnngenError(f"--log {spec!r}: unknown logger; use tensorboard[:DIR] or "
                              "wandb[:PROJECT]")  # fmt: skip
        if any(p.kind == kind for p in parsed):
            raise RnngenError(f"--log {kind} is given twice")
        if ":" in str(spec) and not target:
            raise RnngenError(f"--log {spec!r}: nothing after the colon")
        parsed.append(LogSpec(kind, target or None))
    return parsed


def require(kind: str):
    """Import a logger's package, or the one-line error that names it."""
    package = PACKAGES[kind]
    try:
        return importlib.import_module(package)
    except ImportError:
        raise RnngenError(
            f"--log {kind} needs the {package} package, which is not installed: "
            f"pip install 'rnngen[logging]' (or pip install {package})"
        ) from None


def scalars(record: dict) -> dict[str, float]:
    fields = SCALARS.get(record.get("event"), {})
    return {tag: float(record[f]) for f, tag in fields.items() if record.get(f) is not None}


def sample_text(sample: dict) -> str:
    return f"temperature {sample['temperature']:g}, seed {sample['seed']}:\n{sample['text']}"


def flat_config(config: dict, prefix: str = "") -> dict:
    """Nested config -> {"model/cell": "lstm", ...}, values that both tools accept."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "/"))
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = "none" if value is None else value
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return out


class TensorBoardLogger:
    kind = "tensorboard"

    def __init__(self, directory: Path):
        from rnngen.atomic import describe, temporary_name
        from rnngen.corpus.textio import make_dir

        require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.directory = make_dir(directory, "TensorBoard log directory")
        probe = temporary_name(self.directory / ".probe")
        try:
            probe.touch()
            probe.unlink()
            self.writer = SummaryWriter(log_dir=str(self.directory))
        except OSError as e:
            raise RnngenError(f"--log tensorboard: cannot write to {str(directory)!r}: "
                              f"{describe(e)}") from None  # fmt: skip

    def hyperparameters(self, config: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        flat = flat_config(config)
        # The hparams plugin's table, in this run's own event file (SummaryWriter.add_hparams
        # would start a run of its own), with the validation figures as its metrics.
        metrics = {tag: 0.0 for tag in SCALARS["eval"].values()}
        for summary in hparams(flat, metrics):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def record(self, record: dict) -> None:
        step, event = record.get("step", 0), record.get("event")
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)
        if event == "rollback":
            self.writer.add_text("rollbacks", f"step {step}: {record['reason']}; learning rate "
                                 f"x{record['lr_scale']:g}", step)  # fmt: skip
        elif event == "samples":
            for sample in record["samples"]:
                text = "    " + sample_text(sample).replace("\n", "\n    ")  # verbatim block
                self.writer.add_text(f"samples/temperature_{sample['temperature']:g}", text, step)
        if event in ("eval", "samples", "rollback"):
            self.writer.flush()

    def embedding(self, matrix, labels: list[str], step: int) -> None:
        self.writer.add_embedding(matrix, metadata=labels, tag="input_embedding",
                                  global_step=step)  # fmt: skip
        self.writer.flush()

    def close(self, exit_code: int = 0) -> None:
        self.writer.close()


class WandbLogger:
    kind = "wandb"

    def __init__(self, project: str | None, name: str):
        wandb = require("wandb")
        self.wandb = wandb
        settings = wandb.Settings(console="off", silent=True, show_info=False,
                                  show_warnings=False, init_timeout=60)  # fmt: skip
        try:  # WANDB_MODE, WANDB_DIR, WANDB_API_KEY... are read by wandb itself
            self.run = wandb.init(project=project or DEFAULT_WANDB_PROJECT, name=name,
                                  settings=settings, reinit="create_new")  # fmt: skip
        except Exception as e:  # wandb's errors are of many types; one line, before training
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RnngenError(
                f"--log wandb: cannot start a W&B run ({first}); log in with `wandb login`, "
                "or set WANDB_MODE=offline to log without a network"
            ) from None
        # rnngen's own step is the x axis: a rollback goes back in steps, which W&B's
        # internal step cannot.
        self.run.define_metric("trainer/step")
        self.run.define_metric("*", step_metric="trainer/step")

    def hyperparameters(self, config: dict) -> None:
        self.run.config.update(flat_config(config), allow_val_change=True)

    def record(self, record: dict) -> None:
        data = scalars(record)
        if record.get("event") == "rollback":
            data["train/rollbacks"] = 1.0
        elif record.get("event") == "samples":
            rows = [[record["step"], s["temperature"], s["seed"], s["text"]]
                    for s in record["samples"]]  # fmt: skip
            data["samples"] = self.wandb.Table(columns=["step", "temperature", "seed", "text"],
                                               data=rows)  # fmt: skip
        if data:
            self.run.log({"trainer/step": record.get("step", 0), **data})

    def embedding(self, matrix, labels: list[str], step: int) -> None:
        pass  # the projector is TensorBoard's

    def close(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


class RunLoggers:
    """The loggers of one run. Every call is safe: a logger that raises is closed, dropped,
    and a warning kept for the caller to show (`take_warnings`)."""

    def __init__(self, loggers: list | None = None):
        self.loggers = list(loggers or [])
        self._warnings: list[str] = []

    @classmethod
    def open(cls, specs, name: str) -> RunLoggers:
        """Start every logger `specs` asks for; the first that cannot start is an error
        (the others are closed). `name` names the run (the checkpoint's stem)."""
        opened = []
        try:  # W&B first: when it cannot start, no TensorBoard directory has been made yet
            for spec in sorted(parse_specs(specs), key=lambda spec: spec.kind != "wandb"):
                if spec.kind == "tensorboard":
                    directory = (
                        Path(spec.target) if spec.target else DEFAULT_TENSORBOARD_ROOT / name
                    )
                    opened.append(TensorBoardLogger(directory))
                else:
                    opened.append(WandbLogger(spec.target, name))
        except BaseException:
            for logger in opened:
                logger.close(1)
            raise
        return cls(opened)

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def _each(self, method: str, *args) -> None:
        for logger in list(self.loggers):
            try:
                getattr(logger, method)(*args)
            except Exception as e:  # logging never ends a run
                self.loggers.remove(logger)
                self._warnings.append(f"--log {logger.kind} stopped: {_first_line(e)}")
                with contextlib.suppress(Exception):  # it failed already: nothing to add
                    logger.close(1)

    def hyperparameters(self, config: dict) -> None:
        self._each("hyperparameters", config)

    def record(self, record: dict) -> None:
        self._each("record", record)

    def embedding(self, matrix, labels: list[str], step: int) -> None:
        self._each("embedding", matrix, labels, step)

    def embedding_of(self, checkpoint: Path, tokenizer, step: int) -> None:
        """The saved model's input embedding, its rows labelled with their pieces."""
        from safetensors import safe_open

        from rnngen.word_vectors import piece_labels

        if self.loggers:
            with safe_open(str(checkpoint), framework="pt") as f:
                matrix = f.get_tensor("embedding.weight")  # (V, E)
            self.embedding(matrix, piece_labels(tokenizer), step)

    def take_warnings(self) -> list[str]:
        warnings, self._warnings = self._warnings, []
        return warnings

    def close(self, exit_code: int = 0) -> None:
        self._each("close", exit_code)
        self.loggers = []


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
