"""What `Trainer.run()` yields: the CLI draws progress and saves checkpoints from these."""

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
class Stopped:
    """Training stopped on request (Ctrl-C) at a step boundary; resume_state() is exact."""

    step: int


@dataclass(frozen=True)
class Finished:
    step: int
    elapsed: float
    best_loss: float
    clipped_share: float
