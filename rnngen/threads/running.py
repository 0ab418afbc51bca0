"""The running command's Tuner, for the library's loops: `running` applies a plan around a
block, and `timed` reports each unit of work inside it (nothing without one)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar

from rnngen.threads.plan import ThreadPlan
from rnngen.threads.tuner import Change, Tuner

# -- the tuner of the running command, for the library's loops ------------------------------

_ACTIVE: ContextVar[Tuner | None] = ContextVar("rnngen_threads_tuner", default=None)
_NOTHING = nullcontext()


class _Timed:
    __slots__ = ("tuner", "units", "kind", "started")

    def __init__(self, tuner: Tuner, units: float, kind: str | None):
        self.tuner, self.units, self.kind = tuner, units, kind

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.tuner.record(time.perf_counter() - self.started, self.units, self.kind)


def timed(units: float = 1.0, kind: str | None = None):
    """`with timed(tokens):` around one unit of a loop's work reports its time to the
    command's Tuner (see `running`); without one it does nothing, so library callers keep
    whatever thread count their program set."""
    tuner = _ACTIVE.get()
    return _NOTHING if tuner is None else _Timed(tuner, units, kind)


@contextmanager
def running(
    plan: ThreadPlan, on_change: Callable[[Change], None] | None = None
) -> Iterator[Tuner | None]:
    """Run the block at `plan`'s thread count, adapted when the plan is adaptive: library
    loops inside report their units through `timed`. Restores torch's previous count
    afterwards. Yields the Tuner, or None."""
    import torch

    previous = torch.get_num_threads()
    tuner = None
    if plan.adaptive:
        tuner = Tuner(plan.threads, torch.set_num_threads, on_change=on_change)
    else:
        torch.set_num_threads(plan.threads)
    token = _ACTIVE.set(tuner)
    try:
        yield tuner
    finally:
        _ACTIVE.reset(token)
        torch.set_num_threads(previous)
