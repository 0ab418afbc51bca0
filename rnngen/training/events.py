"""What `Trainer.run()` yields, and what the training run (rnngen/training.py) adds to it:
the CLI draws progress from these, and an API caller's `on_event` receives them.

In the order a run reports them: Placed, TokenizeProgress (while a corpus is tokenized),
SizeChosen (when automatic sizing measured), ModelBuilt, then the loop's Step, Evaluation,
Saved, Samples, Rollback, ThreadsChanged, LoggerStopped, Stopped or Finished, and last the
TrainResult."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placed:
    """The run has its device, precision and CPU threads; under torchrun, its process group."""

    device: str
    precision: str
    threads: str | None  # the CPU thread choice, described (None on a GPU)
    rank: int = 0
    world_size: int = 1
    distributed: bool = False  # under torchrun (rank 0 reports for all)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class TokenizeProgress:
    """Tokenizing the corpus: `done` of `total` bytes. The first of a pass has total None
    (it starts), the last `finished` (it ended, or failed); none when the ids come from a
    tokenized directory."""

    done: int
    total: int | None
    finished: bool = False


@dataclass(frozen=True)
class SizeChosen:
    """Automatic sizing measured this machine and chose the model (rank 0)."""

    summary: str  # one line: the size, the rates measured, why
    sizing: dict  # what the checkpoint's `sizing` field records


@dataclass(frozen=True)
class ModelBuilt:
    """The model is built and the loop about to start (every Step follows this)."""

    layers: int
    cell: str
    hidden_size: int
    parameters: int
    vocab_size: int
    tokenizer_kind: str
    train_tokens: int
    chars_per_token: float  # of the validation text, for bits per character
    device: str  # the device type: cpu, cuda, mps
    precision: str
    resumed_step: int | None  # the step a resumed run continues from
    base: str | None  # the checkpoint being fine-tuned
    output_layer: str | None  # an adaptive softmax, described
    batch_size: int
    world_size: int = 1
    backend: str | None = None
    model: str = "rnn"  # or "window": the fixed-window LM reading `window` tokens
    window: int = 0
    skip: str = "none"  # between stacked layers: residual, highway, dense


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
    """Automatic threads moved to another count (rnngen/threads/): the load changed."""

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
