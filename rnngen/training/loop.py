"""Training: truncated BPTT over contiguous streams, clipping, rollback, resume.

`Trainer.run()` yields events (steps, evaluations, rollbacks, the end) and never prints or
writes files: rnngen/training/run.py saves a checkpoint whenever an evaluation is the best
so far, and the CLI draws progress from the events. `Trainer.resume_state()` is everything
needed to continue bit for bit: weights, optimizer moments, RNG, the carried hidden state
and data position (its side of the resume file, with the load, is resume.py's `Resumable`).
A non-finite loss or gradient norm, or a loss that explodes, rolls back to the last good
state with half the learning rate (rollback.py's `Rollbacks`, the Trainer's other base).

The schedule (the run's length and `progress`, the learning rate's warm-up and cosine decay,
when to evaluate, window lengths, fresh states) is pure arithmetic in schedule.py; the
Trainer keeps the counters it is computed from.

Under torchrun (a `Group` of several processes) each rank trains on its own contiguous share
of the streams through DistributedDataParallel, whose all-reduce leaves every rank the same
gradient: the mean over the global batch, so clipping its norm is global clipping and the
weights stay identical on every rank. Everything that steers the loop is agreed on through
a collective: the loss that decides a rollback, the clock of a time budget, a stop request
and the validation loss that decides the best model. Without a Group nothing changes.

AWD-LSTM's training-side options (Merity et al. 2017): `variable_bptt` draws each window's
length around --seq-len (so the windows' boundaries move from epoch to epoch) and scales the
step's learning rate by length / seq-len; `ar`/`tar` add the model's activation penalties to
the loss; `average` is NT-ASGD's idea for any optimizer: once an evaluation fails to improve
on the best, the weights are averaged from then on, and the average is what evaluations
score and checkpoints keep (rnngen/training/run.py saves `Trainer.eval_model`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from rnngen.config import TrainConfig, with_learning_rate
from rnngen.corpus.store import batchify
from rnngen.errors import RnngenError
from rnngen.hardware import autocast, fused_adam
from rnngen.model import RNNLM, detach_state, reset_rows
from rnngen.scoring.logprobs import model_logprobs
from rnngen.training.distributed import Group
from rnngen.training.events import Evaluation, Finished, Rollback, Step, Stopped, ThreadsChanged
from rnngen.training.resume import Resumable
from rnngen.training.rollback import Rollbacks
from rnngen.training.schedule import (
    EVALS_PER_RUN,
    eval_due,
    fresh_rows,
    learning_rate,
    progress,
    total_steps,
    window_length,
)

__all__ = ["Trainer", "Step", "Evaluation", "Rollback", "Stopped", "Finished", "ThreadsChanged"]


class Trainer(Resumable, Rollbacks):
    def __init__(
        self,
        model: RNNLM,
        train_ids: np.ndarray,
        valid_ids: np.ndarray,
        config: TrainConfig,
        device: torch.device,
        precision: str,
        resume: tuple[dict[str, torch.Tensor], dict] | None = None,
        group: Group | None = None,
    ):
        config = with_learning_rate(config, model.config.hidden_size)  # None: by its width
        self.model, self.config, self.device, self.precision = model, config, device, precision
        self.group = group or Group()  # a single process: every collective is a no-op
        self.stream_range = self.group.stream_range(config.batch_size)
        start, stop = self.stream_range
        self.streams = batchify(train_ids, config.batch_size)[start:stop]  # (B / ranks, N)
        need = config.batch_size * (config.seq_len + 1)
        if self.streams.shape[1] < config.seq_len + 1:
            raise RnngenError(
                f"the training text has {len(train_ids)} tokens, fewer than one window of "
                f"--batch-size {config.batch_size} x (--seq-len {config.seq_len} + 1) = {need}; "
                "use a smaller --batch-size or --seq-len"
            )
        if len(valid_ids) < 2:
            raise RnngenError("the validation text is too short to score (under 2 tokens)")
        self.valid_ids = valid_ids
        self.network = model  # what the training step calls: the model, or its DDP wrapper
        if self.group.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.network = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.steps_per_epoch = math.ceil((self.streams.shape[1] - 1) / config.seq_len)
        self.total_steps = self._total_steps()
        decay, no_decay = [], []
        for param in model.parameters():
            (decay if param.dim() >= 2 else no_decay).append(param)
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(
            groups, lr=config.lr, betas=(0.9, 0.99), fused=fused_adam(device)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.step = self.epoch = self.position = self.clipped_steps = self.rollbacks = 0
        self.elapsed, self.best_loss, self.lr_scale = 0.0, math.inf, 1.0
        self.next_eval = 1
        self.hidden = None
        self.average = None  # torch.optim.swa_utils.AveragedModel once averaging began
        self._loss_average: float | None = None  # of recent losses, to spot an explosion
        self._stop = self._stop_agreed = False
        self.stop_signal = None  # anything with is_set() (a threading.Event): a stop request
        self.tuner = None  # adapts the CPU thread count, after adapt_threads()
        self._window = None  # the last window trained on (x, y): what a thread probe runs
        if resume is not None:
            self._load(*resume)
        self._good = self._snapshot()

    def _total_steps(self) -> int | None:
        return total_steps(self.steps_per_epoch, self.config)

    @property
    def progress(self) -> float:
        return progress(self.step, self.total_steps, self.elapsed, self.config)

    def learning_rate(self) -> float:
        return learning_rate(self.config, self.step, self.progress, self.lr_scale)

    def request_stop(self) -> None:
        """Ask the run to stop at the next step boundary (safe to call from a signal handler).

        With several ranks the request reaches the others at the next agreement, so all of
        them stop at the same step even when only one was asked.
        """
        self._stop = True

    def _agree(self) -> None:
        """Ranks adopt the slowest clock and any rank's stop request, so the time budget,
        the schedule, evaluations and a stop fall on the same step everywhere."""
        if self.group.enabled:
            stop, self.elapsed = self.group.max([float(self._requested()), self.elapsed])
            self._stop_agreed = stop > 0

    def _stopping(self) -> bool:
        return self._stop_agreed if self.group.enabled else self._requested()

    def _requested(self) -> bool:
        if self.stop_signal is not None and self.stop_signal.is_set():
            self._stop = True
        return self._stop

    def adapt_threads(self, most: int, start: int | None = None) -> None:
        """Adapt the CPU thread count to the machine's load as the run goes (rnngen/threads.py),
        between 1 and `most`, starting at `start`. It probes with forward passes of the last
        window beside the steps: the steps themselves always run at the chosen count, so on a
        machine whose load does not change the run computes exactly what it would at a fixed
        count (gradients round differently at other counts for some shapes)."""
        from rnngen.threads import Tuner

        self.tuner = Tuner(most, torch.set_num_threads, start=start, probe=self._forward_seconds)

    def _forward_seconds(self) -> float:
        """Seconds of a forward pass over the first quarter of the last window, without
        dropout (no random numbers drawn, nothing learned): the thread probe's fixed piece
        of work, small because beside a busy program it runs up to 30x slower."""
        x, y = self._window
        length = max(8, x.shape[1] // 4)
        x, y = x[:, :length], y[:, :length]
        self.model.eval()
        started = time.perf_counter()
        with torch.no_grad(), autocast(self.device, self.precision):
            self.model.score(x, y)
        seconds = time.perf_counter() - started
        self.model.train()
        return seconds

    def run(self) -> Iterator[Step | Evaluation | Rollback | Stopped | Finished | ThreadsChanged]:
        model, c = self.model, self.config
        model.train()
        window_tokens, window_start = 0, time.perf_counter()
        self._agree()
        while self.progress < 1.0:
            if self._stopping():
                yield Stopped(self.step)
                return
            threads = torch.get_num_threads() if self.device.type == "cpu" else None
            started = time.perf_counter()
            result = self._train_step()
            change = None
            if self.tuner is not None and not isinstance(result, Rollback):
                change = self.tuner.record(time.perf_counter() - started, result[2])
            self.elapsed += time.perf_counter() - started  # a thread probe's time included
            self._agree()
            if isinstance(result, Rollback):
                yield result
                continue
            if change is not None:
                yield ThreadsChanged(self.step, change.after, change.before, change.speedup)
            loss, norm, tokens = result
            window_tokens += tokens
            if self.step % c.log_every == 0 or self.progress >= 1.0:
                now = time.perf_counter()
                yield Step(
                    self.step, self.epoch, loss, norm, self.learning_rate(),
                    window_tokens / max(now - window_start, 1e-9), self.progress,
                    self.elapsed, self.clipped_steps / self.step, threads,
                )  # fmt: skip
                window_tokens, window_start = 0, time.perf_counter()
            if self._eval_due():
                yield self._evaluate()
                window_tokens, window_start = 0, time.perf_counter()
        if self.next_eval <= EVALS_PER_RUN:  # the last evaluation always happens
            yield self._evaluate()
        clipped_share = self.clipped_steps / max(self.step, 1)
        yield Finished(self.step, self.elapsed, self.best_loss, clipped_share)

    def _train_step(self):
        c, model = self.config, self.model
        if self.position >= self.streams.shape[1] - 1:  # a new epoch starts from a fresh state
            self.epoch, self.position, self.hidden = self.epoch + 1, 0, None
        wanted = self._window_length()
        length = min(wanted, self.streams.shape[1] - 1 - self.position)
        window = self.streams[:, self.position : self.position + length + 1].astype(np.int64)
        batch = torch.from_numpy(window).to(self.device)  # (B, T+1)
        x, y = batch[:, :-1], batch[:, 1:]  # (B, T) each
        self._window = (x, y)
        for group in self.optimizer.param_groups:  # a shorter window: a smaller step
            group["lr"] = self.learning_rate() * wanted / c.seq_len
        with autocast(self.device, self.precision):
            logp, hidden, penalty = self.network(x, self.hidden, targets=y, ar=c.ar, tar=c.tar)
        loss = -logp.mean()  # (B, T) -> the mean cross-entropy in nats
        # The mean over ranks is the global batch's loss (equal token counts); every rank
        # sees the same value, so all of them roll back, or none, before DDP's backward.
        loss_value = self.group.mean(loss)
        if not math.isfinite(loss_value) or self._exploded(loss_value):
            return self._roll_back(f"loss {loss_value:.3g}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss + penalty).backward()
        self.scaler.unscale_(self.optimizer)
        bound = c.clip if c.clip > 0 else math.inf
        # After DDP's all-reduce every rank holds the same global-mean gradient, so this norm,
        # the clipping and the finiteness test below are global and identical on all ranks.
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), bound))
        if not math.isfinite(norm) and self.precision != "fp16":
            return self._roll_back(f"gradient norm {norm}")
        self.scaler.step(self.optimizer)  # fp16: skips the step when the norm is inf/nan
        self.scaler.update()
        if self.average is not None:
            self.average.update_parameters(model)
        self.clipped_steps += int(c.clip > 0 and norm > c.clip)
        self.hidden = reset_rows(detach_state(hidden), self._fresh_rows())
        self.position += length
        self.step += 1
        return loss_value, norm, x.numel() * self.group.world_size

    def _window_length(self) -> int:
        return window_length(self.config, self.step)

    @property
    def eval_model(self) -> RNNLM:
        """What evaluations score and checkpoints keep: the weight average once it began."""
        return self.model if self.average is None else self.average.module

    def _fresh_rows(self) -> list[int]:
        """The streams whose next window starts from a zero state (schedule.fresh_rows)."""
        return fresh_rows(self.streams.shape[0], self.step)

    def _eval_due(self) -> bool:
        due, self.next_eval = eval_due(self.config, self.step, self.progress, self.next_eval)
        return due

    def _evaluate(self) -> Evaluation:
        started = time.perf_counter()
        ids = self.valid_ids
        if self.config.eval_tokens and len(ids) > self.config.eval_tokens:
            ids = ids[: self.config.eval_tokens]
        logp = model_logprobs(self.eval_model, ids, self.device, self.precision, streams=8)
        # Every rank scores the same text with the same weights; rank 0's figure decides, so
        # the best-model decision cannot split even if hardware rounds differently.
        loss = self.group.broadcast_float(float(-logp.mean()))
        is_best = loss < self.best_loss
        if self.config.average and self.average is None and not is_best and self.step > 0:
            self._start_average()  # validation stopped improving: average from here on
        self.best_loss = min(self.best_loss, loss)
        if math.isfinite(loss):
            self._good = self._snapshot()
        seconds = time.perf_counter() - started
        return Evaluation(
            self.step, loss, len(logp), self.best_loss, is_best, self.progress, seconds
        )

    def _start_average(self, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Begin averaging from the current weights (or resume one saved as `tensors`)."""
        self.average = AveragedModel(self.model)
        if tensors is not None:
            self.average.load_state_dict(tensors)
