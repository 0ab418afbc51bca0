"""Torch's CPU threads while a call works, at a --threads plan (rnngen/threads/), its
changes logged: one helper for the CLI's commands and for sampling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext


def running(plan, log: Callable[[str], None]):
    """The block at `plan`'s threads (None: as they are), each change of automatic threads
    given to `log`."""
    if plan is None:
        return nullcontext()
    from rnngen.threads import running as at_plan

    return at_plan(plan, on_change=lambda change: log(change.describe()))


@contextmanager
def computing(plan, device, log: Callable[[str], None]) -> Iterator[None]:
    """A command's torch work at its --threads plan, the choice logged first and, with
    automatic threads, every change; on a GPU the CPU threads are left be."""
    if device.type != "cpu":
        yield
        return
    log(plan.describe())
    with running(plan, log):
        yield
