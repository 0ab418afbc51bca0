"""Continuous batching: one worker thread per model steps every active stream together.

A `Job` is one request: one or more prompts, n rows each. The event loop `submit`s it; the
worker runs its prompts and adds their rows to the model's batch before the next step
(`join`), and every step chooses a token for every row of every job at once, delivers the
new text to the jobs' event loop, then advances all rows together. A row that ends leaves
the batch at once; a cancelled job (a client gone, a deadline) leaves at the next step. The
worker never waits for a client: it hands events to the loop and goes on.

Admission: at most `max_batch` rows are in the batch or about to join it; jobs beyond wait in
a queue of at most `max_queue` jobs (FIFO), and a job beyond that is refused at once
(`QueueFull`, answered 429). All of it is plain bookkeeping under one lock, written against
the small interface below, so it is tested with a fake model.

The batch object (the library's `Sampler`, from `rnngen.api.sampler`: each row at the
precision its temperature gets, as `rnngen sample` runs it):
    add(prompt, seeds, **options) -> row ids   # runs the prompt; options: temperature, ...
    choose() -> [event]     # event.index: a row id; a Piece has .text, a Done also .reason
    advance()               # runs the chosen tokens
    drop(row ids)
    len(batch)              # rows
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("rnngen.serve")


class QueueFull(Exception):
    """No room in the batch nor in the queue."""


class Draining(Exception):
    """The server is shutting down and takes no new work."""


@dataclass(eq=False)
class Job:
    """One request in the scheduler: its rows, and what the event loop reads back."""

    id: str
    prompts: tuple[str, ...]
    n: int
    options: dict  # the batch's add() options: temperature, top_k, top_p, max_tokens, stops
    seeds: list[list[int | None]]  # per prompt, per choice
    loop: asyncio.AbstractEventLoop
    # Filled on the loop's thread (by `_deliver`); read by the request's handler.
    events: list = field(default_factory=list)  # (choice index, event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None  # a failure in the model: the request gets a 500
    # Worker's side.
    cancelled: bool = False
    rows: dict[int, int] = field(default_factory=dict)  # row id -> choice index
    left: int = 0  # rows not yet ended

    @property
    def size(self) -> int:
        return len(self.prompts) * self.n

    def take(self) -> list:
        """The events delivered since the last call (on the loop's thread)."""
        events, self.events = self.events, []
        self.wake.clear()
        return events


class Scheduler:
    """The worker thread of one model, with its batch, queue and counters."""

    def __init__(self, name: str, new_batch: Callable[[], object], *, max_batch: int,
                 max_queue: int):  # fmt: skip
        self.name = name
        self.batch = new_batch()
        self.new_batch = new_batch
        self.max_batch, self.max_queue = max_batch, max_queue
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)
        self.joining: list[Job] = []  # admitted; prompts not yet run
        self.waiting: deque[Job] = deque()  # queued for room in the batch
        self.active: dict[int, Job] = {}  # row id -> job (worker's)
        self.used = 0  # rows in the batch or joining
        self.rows = 0  # rows in the batch (for /health)
        self.stopping = False
        self.draining = False
        self.served = self.tokens = self.cancels = self.failures = self.steps = 0
        self.thread = threading.Thread(target=self._run, name=f"scheduler-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        with self.lock:
            self.stopping = True
            self.wakeup.notify()
        if self.thread.is_alive():
            self.thread.join(timeout)

    # -- the event loop's side ---------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Admit the job to the next step, or queue it; QueueFull or Draining otherwise."""
        with self.lock:
            if self.draining or self.stopping:
                raise Draining
            if not self.waiting and self.used + job.size <= self.max_batch:
                self._admit(job)
            elif len(self.waiting) < self.max_queue:
                self.waiting.append(job)
            else:
                raise QueueFull

    def cancel(self, job: Job) -> None:
        """Stop a job (its client left, or its deadline passed); its rows leave at the next
        step. Safe to call for a job that has ended."""
        with self.lock:
            if job.cancelled:
                return
            job.cancelled = True
            if job in self.waiting:
                self.waiting.remove(job)
            self.wakeup.notify()

    def drain(self) -> None:
        """Take no new jobs; queued and running ones go on."""
        with self.lock:
            self.draining = True

    def stats(self) -> dict:
        with self.lock:
            return {"active_streams": self.rows, "reserved_streams": self.used,
                    "queued_requests": len(self.waiting), "max_batch": self.max_batch,
                    "max_queue": self.max_queue, "requests_served": self.served,
                    "tokens_generated": self.tokens, "requests_cancelled": self.cancels,
                    "model_failures": self.failures, "steps": self.steps}  # fmt: skip

    # -- the worker ---------------------------------------------------------------------------

    def _admit(self, job: Job) -> None:  # under the lock
        self.joining.append(job)
        self.used += job.size
        self.wakeup.notify()

    def _release(self, count: int) -> None:  # under the lock
        self.used -= count
        while self.waiting and self.used + self.waiting[0].size <= self.max_batch:
            self._admit(self.waiting.popleft())

    def _run(self) -> None:
        while True:
            with self.lock:
                while not (self.stopping or self.joining or self.rows or self._cancelled()):
                    self.wakeup.wait()
                if self.stopping:
                    return
                joins, self.joining = self.joining, []
            self._drop_cancelled()
            for job in joins:
                self._join(job)
            with self.lock:
                self.rows = len(self.batch)
            if not len(self.batch):
                continue
            self._step()

    def _cancelled(self) -> bool:  # under the lock
        return any(job.cancelled for job in self.active.values())

    def _drop_cancelled(self) -> None:
        gone = {job.id: job for job in self.active.values() if job.cancelled}
        for job in gone.values():
            ids = [row for row, j in self.active.items() if j is job]
            self.batch.drop(ids)
            for row in ids:
                del self.active[row]
            with self.lock:
                self.cancels += 1
                self._release(len(ids))

    def _join(self, job: Job) -> None:
        """Run the job's prompts and add its rows (a failure fails this job only)."""
        if job.cancelled:
            with self.lock:
                self._release(job.size)
            return
        added: list[int] = []
        try:
            for p, prompt in enumerate(job.prompts):
                ids = self.batch.add(prompt, job.seeds[p], **job.options)
                added += ids
                for i, row in enumerate(ids):
                    job.rows[row] = p * job.n + i
        except Exception as e:
            self.batch.drop(added)
            self._fail([job], e)
            with self.lock:
                self._release(job.size)
            return
        job.left = job.size
        for row in added:
            self.active[row] = job

    def _step(self) -> None:
        try:
            events = self.batch.choose()
        except Exception as e:
            self._fail_all(e)
            return
        by_job: dict[str, tuple[Job, list]] = {}
        ended = 0
        for event in events:
            job = self.active.get(event.index)
            if job is None:
                continue
            by_job.setdefault(job.id, (job, []))[1].append((job.rows[event.index], event))
            if hasattr(event, "reason"):  # Done: the row has left the batch
                del self.active[event.index]
                job.left -= 1
                ended += 1
                self.tokens += event.tokens
                if job.left == 0:
                    self.served += 1
        if by_job:
            self._deliver_all(list(by_job.values()))
        with self.lock:
            self.steps += 1
            if ended:
                self._release(ended)
        try:
            self.batch.advance()
        except Exception as e:
            self._fail_all(e)
            return
        with self.lock:
            self.rows = len(self.batch)

    def _fail_all(self, error: BaseException) -> None:
        """The model failed in a step: every job in the batch gets the error; a new batch."""
        jobs = {job.id: job for job in self.active.values()}
        self._fail(list(jobs.values()), error)
        self.active.clear()
        try:
            self.batch = self.new_batch()
        except Exception:  # keep the old one; the next step will tell
            self.batch.drop(self.batch_ids())
        with self.lock:
            self.rows = len(self.batch)
            self._release(sum(job.left for job in jobs.values()))

    def batch_ids(self) -> list[int]:
        return list(getattr(self.batch, "ids", []))

    def _fail(self, jobs: list[Job], error: BaseException) -> None:
        with self.lock:
            self.failures += 1
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        for job in jobs:
            log.error("request %s: model %s failed: %s", job.id, self.name, detail.rstrip())
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_fail_job, job, error)

    def _deliver_all(self, batches: list[tuple[Job, list]]) -> None:
        loops: dict[int, tuple[asyncio.AbstractEventLoop, list]] = {}
        for job, events in batches:
            loops.setdefault(id(job.loop), (job.loop, []))[1].append((job, events))
        for loop, items in loops.values():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
                loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[Job, list]]) -> None:
    for job, events in items:
        job.events.extend(events)
        job.wake.set()


def _fail_job(job: Job, error: BaseException) -> None:
    job.error = error
    job.wake.set()
