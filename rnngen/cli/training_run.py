"""The terminal side of one `rnngen train` run: the events of the library's training run
(rnngen.api.train's `on_event`) drawn as log lines and progress on stderr, and the JSON
summary on stdout. The files are the library's; nothing here writes one.

Under torchrun every process runs the same phases, but only rank 0 draws: the others
report nothing (rank 0 gives the warnings too).
"""

from __future__ import annotations

import contextlib
import time

from rnngen import api
from rnngen.cli.console import Reporter
from rnngen.cli.output import print_json


class SilentReporter(Reporter):
    """What ranks other than 0 report: nothing, not even warnings (rank 0 gives them)."""

    def __init__(self):
        super().__init__(quiet=True)

    def warn(self, message: str) -> None:
        pass


def log_model(reporter: Reporter, built: api.ModelBuilt) -> None:
    """The "model: ..." line (and under torchrun the "distributed: ..." one) of a built run."""
    shape = f"{built.layers}x{built.cell} {built.hidden_size}"
    if built.model == "window":  # tanh layers
        shape = f"window {built.window}, {built.layers}x{built.hidden_size}"
    shape += f", {built.skip}" if built.skip != "none" else ""
    reporter.log(
        f"model: {shape}, "
        f"{built.parameters / 1e6:.2f}M parameters, vocab {built.vocab_size} "
        f"({built.tokenizer_kind}); {built.train_tokens:,} training tokens; "
        f"{built.device} {built.precision}"
        + (f"; resuming at step {built.resumed_step}" if built.resumed_step is not None else "")
        + (f"; fine-tuning {built.base}" if built.base else "")
    )
    if built.output_layer is not None:
        reporter.log(f"output: {built.output_layer}")
    if built.world_size > 1:
        share = built.batch_size // built.world_size
        reporter.log(
            f"distributed: {built.world_size} processes ({built.backend}), "
            f"{share} of the {built.batch_size} streams each"
        )


class RunView:
    """Draws the events of `rnngen.api.train` as they come (it is the `on_event` callback);
    `code` is the exit code once the run returned (0, or 130 for a run stopped on request).
    `on_loop(distributed)` is called once the model is built, as the loop starts, and
    `on_end()` at the run's last event (the signal handling of rnngen/cli/train.py)."""

    def __init__(self, reporter: Reporter, json_output: bool, on_loop=None, on_end=None):
        self.reporter, self.json_output = reporter, json_output
        self.on_loop, self.on_end = on_loop, on_end
        self.distributed, self.chars_per_token, self.code = False, 1.0, None
        self.last_plain = time.monotonic()
        self.stack = contextlib.ExitStack()  # the progress bar shown now, if any
        self.progress = None

    def __call__(self, event) -> None:
        if isinstance(event, api.Placed):
            self.distributed = event.distributed
            if not event.is_main:  # rank 0 reports for all
                self.reporter, self.json_output = SilentReporter(), False
            if event.threads is not None:
                self.reporter.log(event.threads)
        elif isinstance(event, api.TokenizeProgress):
            self._tokenizing(event)
        elif isinstance(event, api.SizeChosen):
            self.reporter.log(event.summary)
        elif isinstance(event, api.ModelBuilt):
            log_model(self.reporter, event)
            self.chars_per_token = event.chars_per_token
            if self.on_loop is not None:
                self.on_loop(self.distributed)
            self.progress = self.stack.enter_context(self.reporter.steps_progress("train", 1.0))
        else:
            if isinstance(event, api.TrainResult) and self.on_end is not None:
                self.on_end()
            self._loop_event(event)

    def close(self) -> None:
        """Take down a progress bar a failed run left up."""
        self.stack.close()

    def _tokenizing(self, event: api.TokenizeProgress) -> None:
        if event.finished:
            self.stack.close()
        elif event.total is None:
            self.progress = self.stack.enter_context(self.reporter.bytes_progress("tokenize"))
        else:
            self.progress(event.done, event.total)

    def _loop_event(self, event) -> None:
        if isinstance(event, api.Step):
            self.progress(event.progress, describe(event))
            self._plain_progress(event)
        elif isinstance(event, api.Evaluation):
            self.reporter.log(format_eval(event, self.chars_per_token))
        elif isinstance(event, api.ThreadsChanged):
            self.reporter.log(event.describe())
        elif isinstance(event, api.Samples):
            for sample in event.samples:
                self.reporter.log(format_sample(sample))
        elif isinstance(event, api.LoggerStopped):
            self.reporter.warn(event.message)
        elif isinstance(event, api.Rollback):
            self.reporter.warn(
                f"step {event.step}: {event.reason}; rolled back to the last good "
                f"state, learning rate now x{event.lr_scale:g}"
            )
        elif isinstance(event, api.TrainResult) and event.interrupted:
            launcher = "torchrun ... -m rnngen" if self.distributed else "rnngen"
            self.reporter.log(
                f"interrupted at step {event.steps}; state saved. Continue with: "
                f"{launcher} train ... -o {event.checkpoint} --resume"
            )
            self.code = 130
            self.stack.close()
        elif isinstance(event, api.TrainResult):
            self._finish(event)
            self.code = 0
            self.stack.close()

    def _plain_progress(self, step: api.Step) -> None:
        if self.reporter.interactive or self.reporter.quiet:
            return
        now = time.monotonic()
        if now - self.last_plain >= self.reporter.plain_every:
            self.last_plain = now
            self.reporter.log(f"step {step.step} ({step.progress:.0%}): {describe(step)}")

    def _finish(self, result: api.TrainResult) -> None:
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


def describe(step: api.Step) -> str:
    return (
        f"loss {step.loss:.3f} ppl {api.perplexity(step.loss):.1f} "
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


def format_eval(evaluation: api.Evaluation, chars_per_token: float) -> str:
    bpc = api.bits(evaluation.valid_loss, chars_per_token)
    star = " *" if evaluation.is_best else ""
    return (
        f"step {evaluation.step}: valid loss {evaluation.valid_loss:.4f} "
        f"ppl {api.perplexity(evaluation.valid_loss):.2f} bpc {bpc:.4f} "
        f"({evaluation.valid_tokens} tokens, best {evaluation.best_loss:.4f}){star}"
    )
