"""What `Trainer.run()` yields, and what the training run (rnngen/training.py) adds to it:
the CLI draws progress from these, and an API caller's `on_event` receives them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    step: int
    epoch: int
    loss: float  # nats per token of this batch
    grad_norm: float  # before clipping
    lr: float
    tokens_per_second: float
    progress: float
    elapsed: float  # training seconds (evaluations excluded)
    clipped_share: float  # share of steps so far whose norm exceeded --clip
    threads: int | None = None  # CPU threads the step ran with (None on a GPU)


@dataclass(frozen=True)
class Evaluation:
    step: int
    valid_loss: float  # nats per token
    valid_tokens: int
    best_loss: float
    is_best: bool
    progress: float
    seconds: float  # time the evaluation took


@dataclass(frozen=True)
class Rollback:
    step: int
    reason: str
    lr_scale: float


@dataclass(frozen=True)
class ThreadsChanged:
    """Automatic threads moved to another count (rnngen/threads.py): the load changed."""

    step: int
    threads: int
    before: int
    speedup: float  # how much faster the new count ran than the old one, when measured

    def describe(self) -> str:
        from rnngen.threads import Change

        return f"step {self.step}: " + Change(self.before, self.threads, self.speedup).describe()


@dataclass(frozen=True)
class Stopped:
    """Training stopped on request (Ctrl-C) at a step boundary; resume_state() is exact."""

    step: int


@dataclass(frozen=True)
class Finished:
    step: int
    elapsed: float
    best_loss: float
    clipped_share: float


# What the training run (rnngen/training.py) adds to the Trainer's events.


@dataclass(frozen=True)
class Saved:
    """The best model so far is on disk at `checkpoint` (after a best Evaluation)."""

    step: int
    checkpoint: str


@dataclass(frozen=True)
class Samples:
    """--sample-every: what the model writes at this evaluation (metrics.jsonl's `samples`
    record): [{"temperature", "seed", "text"}, ...] and the seconds sampling took."""

    step: int
    samples: list
    seconds: float


@dataclass(frozen=True)
class LoggerStopped:
    """A --log logger failed mid-run and was dropped; training goes on."""

    message: str


@dataclass(frozen=True)
class TrainResult:
    """The last event of a run, and what `rnngen.train(...)` returns: every file is saved.

    `interrupted` runs stopped on request (Ctrl-C, SIGTERM, `request_stop`) and can be
    continued with resume=True; their checkpoint exists only if an evaluation was reached.
    """

    checkpoint: str
    steps: int
    seconds: float  # training seconds, evaluations excluded
    best_valid_loss: float  # nats per token
    best_valid_bpc: float | None
    clipped_share: float
    tokens_per_second: float | None  # of the last logged step
    sizing: dict | None  # what automatic sizing measured and chose, if it ran
    interrupted: bool = False
