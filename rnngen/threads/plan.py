"""The thread count a command starts with: --threads, OMP_NUM_THREADS, torchrun's share of
the cores, or automatic (a Tuner adapts it; tuner.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from rnngen.errors import RnngenError


def usable_cores() -> int:
    """The cores this process may run on (taskset, cgroups' cpusets), not all the machine's:
    more threads than cores makes every step slower."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS has no affinity call
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPlan:
    """The thread count a command starts with, whether it adapts, and why."""

    threads: int  # the count to start at; when adaptive, the most it will use
    adaptive: bool
    why: str

    def describe(self) -> str:
        if self.adaptive:
            return (
                f"threads: automatic, up to {self.threads} ({self.why}); fewer while other "
                "programs keep these cores busy (--threads N fixes it)"
            )
        return f"threads: {self.threads} ({self.why})"


def plan_threads(option: int | str | None = None, *, environ: Mapping[str, str] | None = None,
                 cores: int | None = None, processes: int = 1) -> ThreadPlan:  # fmt: skip
    """The plan for `--threads OPTION` (None: not given; "auto": adapt whatever the
    environment says), OMP_NUM_THREADS in `environ`, `cores` usable cores and `processes`
    processes of one torchrun job on this machine.

    --threads above the usable cores is an error (more threads than cores is the slowdown
    this module exists to avoid); OMP_NUM_THREADS above them is lowered to them, since the
    environment is often inherited from elsewhere (a CI runner's defaults)."""
    environ = os.environ if environ is None else environ
    cores = usable_cores() if cores is None else cores
    auto = isinstance(option, str) and option.strip().lower() == "auto"
    if option is not None and not auto:
        count = _count(option, f"--threads must be a whole number from 1 or auto, got {option!r}")
        if count > cores:
            raise RnngenError(
                f"--threads {count}: this process may run on {_cores(cores)}, and more threads "
                "than cores makes every step slower"
            )
        return ThreadPlan(count, False, "--threads")
    if processes > 1:
        share = max(1, cores // processes)
        why = f"torchrun: {_cores(cores)} shared by {processes} processes"
        return ThreadPlan(share, False, why)
    raw = environ.get("OMP_NUM_THREADS", "").strip()
    if raw and not auto:
        # OpenMP allows a list (one count per nesting level); torch uses the first.
        first = raw.split(",")[0]
        count = _count(first, f"OMP_NUM_THREADS={raw!r} is not a number of threads; unset it or "
                              "give --threads")  # fmt: skip
        if count > cores:
            why = f"OMP_NUM_THREADS={raw}, lowered to the {_cores(cores)}"
            return ThreadPlan(cores, False, why)
        return ThreadPlan(count, False, f"OMP_NUM_THREADS={raw}")
    if cores == 1:
        return ThreadPlan(1, False, "the one usable core")
    return ThreadPlan(cores, True, "the usable cores")


def _count(value: int | str, message: str) -> int:
    try:
        count = int(str(value).strip())
    except ValueError:
        raise RnngenError(message) from None
    if count < 1:
        raise RnngenError(message)
    return count


def _cores(n: int) -> str:
    return f"{n} core{'s' if n != 1 else ''}"
