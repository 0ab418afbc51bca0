"""A training run: `train` (what `rnngen train` does), its events through `on_event`."""

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
from rnngen.training import train

__all__ = ["Evaluation", "Finished", "LoggerStopped", "ModelBuilt", "Placed", "Rollback",
           "Samples", "Saved", "SizeChosen", "Step", "Stopped", "ThreadsChanged",
           "TokenizeProgress", "TrainResult", "bits", "perplexity", "train"]  # fmt: skip
