"""The terminal side of one `rnngen train` run: the values and events of the library's
training phases (rnngen/training.py) drawn as log lines and progress on stderr, and the JSON
summary on stdout. The files are the library's; nothing here writes one.

Under torchrun every process runs the same phases, but only rank 0 draws: the others get a
SilentReporter (rank 0 gives the warnings too).
"""

from __future__ import annotations

import time

from rnngen import metrics
from rnngen.cli.console import Reporter
from rnngen.cli.output import print_json
from rnngen.train_events import (
    Evaluation,
    LoggerStopped,
    Rollback,
    Samples,
    Step,
    ThreadsChanged,
    TrainResult,
)


class SilentReporter(Reporter):
    """What ranks other than 0 report: nothing, not even warnings (rank 0 gives them)."""

    def __init__(self):
        super().__init__(quiet=True)

    def warn(self, message: str) -> None:
        pass


def log_model(reporter: Reporter, model, data) -> None:
    """The "model: ..." line (and under torchrun the "distributed: ..." one) of a built run."""
    from rnngen.adaptive import describe

    config, tokenizer, place = model.plan.config, data.tokenizer, model.place
    shape = f"{config.layers}x{config.cell} {config.hidden_size}"
    shape = config.describe() if config.model == "window" else shape  # "window 8, 1x256"
    shape += f", {config.skip}" if config.skip != "none" else ""
    reporter.log(
        f"model: {shape}, "
        f"{model.parameters / 1e6:.2f}M parameters, vocab {tokenizer.vocab_size} "
        f"({tokenizer.kind}); {len(data.train_ids):,} training tokens; "
        f"{place.device.type} {place.precision}"
        + (f"; resuming at step {model.trainer.step}" if model.plan.resumed else "")
        + (f"; fine-tuning {model.plan.base.path}" if model.plan.base else "")
    )
    if config.softmax == "adaptive":
        reporter.log(f"output: {describe(config)}")
    group = place.group
    if group.enabled:
        share = model.plan.train_config.batch_size // group.world_size
        reporter.log(
            f"distributed: {group.world_size} processes ({group.backend}), "
            f"{share} of the {model.plan.train_config.batch_size} streams each"
        )


class RunView:
    """Draws the events of `rnngen.training.run`; `show` returns the exit code (0, or 130
    for a run stopped on request)."""

    def __init__(self, reporter: Reporter, data, json_output: bool, distributed: bool):
        self.reporter, self.json_output, self.distributed = reporter, json_output, distributed
        self.chars_per_token = data.chars_per_token
        self.last_plain = time.monotonic()

    def show(self, events) -> int:
        with self.reporter.steps_progress("train", 1.0) as progress:
            for event in events:
                if isinstance(event, Step):
                    progress(event.progress, describe(event))
                    self._plain_progress(event)
                elif isinstance(event, Evaluation):
                    self.reporter.log(format_eval(event, self.chars_per_token))
                elif isinstance(event, ThreadsChanged):
                    self.reporter.log(event.describe())
                elif isinstance(event, Samples):
                    for sample in event.samples:
                        self.reporter.log(format_sample(sample))
                elif isinstance(event, LoggerStopped):
                    self.reporter.warn(event.message)
                elif isinstance(event, Rollback):
                    self.reporter.warn(
                        f"step {event.step}: {event.reason}; rolled back to the last good "
                        f"state, learning rate now x{event.lr_scale:g}"
                    )
                elif isinstance(event, TrainResult) and event.interrupted:
                    launcher = "torchrun ... -m rnngen" if self.distributed else "rnngen"
                    self.reporter.log(
                        f"interrupted at step {event.steps}; state saved. Continue with: "
                        f"{launcher} train ... -o {event.checkpoint} --resume"
                    )
                    return 130
                elif isinstance(event, TrainResult):
                    self._finish(event)
        return 0

    def _plain_progress(self, step: Step) -> None:
        if self.reporter.interactive or self.reporter.quiet:
            return
        now = time.monotonic()
        if now - self.last_plain >= self.reporter.plain_every:
            self.last_plain = now
            self.reporter.log(f"step {step.step} ({step.progress:.0%}): {describe(step)}")

    def _finish(self, result: TrainResult) -> None:
        bpc = result.best_valid_bpc if result.best_valid_bpc is not None else float("nan")
        self.reporter.log(
            f"done: {result.steps} steps in {result.seconds:.0f}s; best valid loss "
            f"{result.best_valid_loss:.4f} (bpc {bpc:.4f}); "
            f"{result.clipped_share:.0%} of steps clipped; saved {result.checkpoint}"
        )
        if self.json_output:
            print_json(
                {
                    "checkpoint": result.checkpoint,
                    "steps": result.steps,
                    "train_seconds": round(result.seconds, 2),
                    "best_valid_loss": result.best_valid_loss,
                    "best_valid_bpc": result.best_valid_bpc,
                    "clipped_share": result.clipped_share,
                    "tokens_per_second": result.tokens_per_second,
                }
            )


def describe(step: Step) -> str:
    return (
        f"loss {step.loss:.3f} ppl {metrics.perplexity(step.loss):.1f} "
        f"{step.tokens_per_second / 1e3:.1f}k tok/s |g| {step.grad_norm:.2f} "
        f"lr {step.lr:.2e}"
    )


def format_sample(sample: dict) -> str:
    """A sample under its evaluation line: its lines indented, so they read as one block,
    and control characters (an undertrained model samples any) escaped for the terminal."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else ascii(ch)[1:-1]
                   for ch in sample["text"].rstrip("\n"))  # fmt: skip
    text = text.replace("\n", "\n    ")
    return f"  sample (temperature {sample['temperature']:g}, seed {sample['seed']}):\n    {text}"


def format_eval(evaluation: Evaluation, chars_per_token: float) -> str:
    bpc = metrics.bits(evaluation.valid_loss, chars_per_token)
    star = " *" if evaluation.is_best else ""
    return (
        f"step {evaluation.step}: valid loss {evaluation.valid_loss:.4f} "
        f"ppl {metrics.perplexity(evaluation.valid_loss):.2f} bpc {bpc:.4f} "
        f"({evaluation.valid_tokens} tokens, best {evaluation.best_loss:.4f}){star}"
    )
