"""The training schedule: pure arithmetic on the step, the clock and the options.

The length of a run is `progress` in [0, 1]: the largest of steps / max-steps,
steps / (epochs x steps per epoch) and elapsed / time budget. The learning rate follows a
linear warm-up and a cosine decay in `progress`, so a time-boxed run ends with a fully
decayed learning rate just as a step-counted one does. Evaluations fall about
EVALS_PER_RUN times a run (or every --eval-every steps); each stream starts from a fresh
state once every FRESH_STATE_EVERY windows; with variable BPTT (AWD-LSTM) each window's
length is drawn around --seq-len.

Nothing here holds state: the Trainer (loop.py) keeps the counters and asks, and automatic
sizing (phases.py) asks for a run's length before any Trainer exists.
"""

from __future__ import annotations

import math

import numpy as np

from rnngen.config import TrainConfig

DEFAULT_EPOCHS = 10
EVALS_PER_RUN = 10
FRESH_STATE_EVERY = 32  # windows between two fresh (zero) states of a stream
# Variable BPTT (AWD-LSTM): a window is --seq-len long, or half that with this probability,
# plus normal noise of this many tokens; never shorter than MIN_WINDOW.
HALF_WINDOW_SHARE, WINDOW_NOISE, MIN_WINDOW = 0.05, 5.0, 5


def total_steps(steps_per_epoch: int, c: TrainConfig) -> int | None:
    """The run's length in steps from --max-steps and --epochs (the first limit reached), or
    the default epochs when neither a step limit nor a time budget is given; None when only
    a time budget limits the run."""
    counts = [c.max_steps] if c.max_steps else []
    if c.epochs:
        counts.append(math.ceil(c.epochs * steps_per_epoch))
    if not counts and not c.time_budget:
        counts.append(DEFAULT_EPOCHS * steps_per_epoch)
    return min(counts) if counts else None


def steps_per_run(train_tokens: int, c: TrainConfig) -> int | None:
    """`total_steps` for a training text of `train_tokens` tokens, before any Trainer exists
    (automatic sizing needs the run's length to choose the model the Trainer will train)."""
    columns = train_tokens // c.batch_size  # batchify's (B, N) streams
    return total_steps(max(math.ceil((columns - 1) / c.seq_len), 1), c)


def progress(step: int, steps: int | None, elapsed: float, c: TrainConfig) -> float:
    """How far the run is, in [0, 1]: the furthest of its step count (of `steps` in all)
    and its time budget."""
    parts = [0.0]
    if steps:
        parts.append(step / steps)
    if c.time_budget:
        parts.append(elapsed / c.time_budget)
    return min(1.0, max(parts))


def learning_rate(c: TrainConfig, step: int, progress: float, lr_scale: float) -> float:
    """The learning rate at `step`: warm-up, then the cosine decay in `progress`, times
    `lr_scale` (halved by each rollback)."""
    warmup = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return c.lr * lr_scale * warmup * (c.min_lr_ratio + (1 - c.min_lr_ratio) * cosine)


def window_length(c: TrainConfig, step: int) -> int:
    """--seq-len, or with variable BPTT a length drawn for this step: from a generator
    seeded by (seed, step), so a resumed run draws the same windows."""
    if not c.variable_bptt:
        return c.seq_len
    rng = np.random.default_rng([c.seed % (1 << 64), step])
    base = c.seq_len / 2 if rng.random() < HALF_WINDOW_SHARE else c.seq_len
    drawn = int(round(rng.normal(base, WINDOW_NOISE)))
    return min(max(drawn, min(MIN_WINDOW, c.seq_len)), 2 * c.seq_len)


def fresh_rows(batch: int, step: int) -> list[int]:
    """The streams whose window after `step` steps starts from a zero state: each stream once
    every FRESH_STATE_EVERY windows, staggered. Carrying the state through a whole epoch means
    the model otherwise meets a zero state once per epoch, and it forgets how to start:
    a GRU trained that way scored 11 nats/token on the first window of its second epoch
    and collapsed, where eval and sampling always begin from a zero state."""
    step += 1
    return [row for row in range(batch) if (step + row) % FRESH_STATE_EVERY == 0]


def eval_due(c: TrainConfig, step: int, progress: float, next_eval: int) -> tuple[bool, int]:
    """Whether `step` is evaluated, and the next evaluation's number: one every --eval-every
    steps when given (it sets the interval), else about EVALS_PER_RUN evaluations spread over
    the run; either way the run's last step is evaluated too (the Trainer's `run`)."""
    every = c.eval_every
    due = step % every == 0 if every else progress * EVALS_PER_RUN >= next_eval
    if due:
        next_eval = math.floor(progress * EVALS_PER_RUN) + 1
    return bool(due), next_eval
