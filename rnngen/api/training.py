"""A training run: `train` (what `rnngen train` does), its events through `on_event`.

Importing this costs no torch (the run imports it when it starts), so that `rnngen tokenize`
and `rnngen --help`, which reach the library through rnngen.api, stay quick."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rnngen.arguments import checked
from rnngen.metrics import bits, perplexity
from rnngen.training.events import (
    Evaluation,
    Finished,
    LoggerStopped,
    ModelBuilt,
    Placed,
    Rollback,
    Samples,
    Saved,
    SizeChosen,
    Step,
    Stopped,
    ThreadsChanged,
    TokenizeProgress,
    TrainResult,
)
from rnngen.training.options import TRAIN_OPTIONS, check_run

__all__ = ["Evaluation", "Finished", "LoggerStopped", "ModelBuilt", "Placed", "Rollback",
           "Samples", "Saved", "SizeChosen", "Step", "Stopped", "ThreadsChanged",
           "TokenizeProgress", "TrainResult", "bits", "perplexity", "train"]  # fmt: skip


@checked(options=TRAIN_OPTIONS, rename={"-o": "output"})
def train(corpus: str | Path, *, time_budget: str | float | None = None,
          output: str | Path | None = None, on_event: Callable | None = None, stop=None,
          resume: bool = False, force: bool = False, init_from: str | Path | None = None,
          threads: int | str | None = None, log: Iterable[str] = (), sample_every: int = 0,
          **options) -> TrainResult:  # fmt: skip
    """Train a model on `corpus` as `rnngen train` does, and return its TrainResult: every
    phase and event reaches `on_event`, and `stop` (anything with is_set()) stops the run at
    a step boundary. The options and their defaults: rnngen.training.run.train, which this runs
    once they are checked (before torch is imported: a mistake fails in milliseconds)."""
    check_run(time_budget, dict(options), log, sample_every)
    from rnngen.training.run import train as run

    return run(corpus, time_budget=time_budget, output=output, on_event=on_event, stop=stop,
               resume=resume, force=force, init_from=init_from, threads=threads, log=log,
               sample_every=sample_every, **options)  # fmt: skip
