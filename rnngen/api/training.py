"""A training run: `train` (what `rnngen train` does), its events through `on_event`.

Importing this costs no torch (the run imports it when it starts), so that `rnngen tokenize`
and `rnngen --help`, which reach the library through rnngen.api, stay quick."""

from rnngen.metrics import bits, perplexity
from rnngen.train_events import (
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


def train(*corpus, **options) -> TrainResult:
    """Train a model on `corpus` as `rnngen train` does, and return its TrainResult: every
    phase and event reaches `on_event`, and `stop` (anything with is_set()) stops the run at
    a step boundary. The options, their defaults and checks: rnngen.training.train."""
    from rnngen.training import train as run

    return run(*corpus, **options)  # its checks name this call's mistakes (train(): ...)


__all__ = ["Evaluation", "Finished", "LoggerStopped", "ModelBuilt", "Placed", "Rollback",
           "Samples", "Saved", "SizeChosen", "Step", "Stopped", "ThreadsChanged",
           "TokenizeProgress", "TrainResult", "bits", "perplexity", "train"]  # fmt: skip
