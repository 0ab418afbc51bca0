"""How many CPU threads torch computes with: fixed, or chosen again and again as the load changes.

torch runs its CPU kernels' parallel loops in OpenMP (libgomp in the Linux wheels). Every
parallel region ends at a barrier where the threads wait for each other, spinning a while
before they sleep. When another program holds one of the cores, the thread that lost it
stalls every region while its partner spins: on 2 cores, beside one busy process, the default
1x512 LSTM training kept 12-30% of its quiet speed with 2 threads, and 59% adapting
(BENCHMARKS.md, "Sharing the machine"). A passive wait (OMP_WAIT_POLICY=PASSIVE) cost 12-18%
on a quiet machine and still lost to 1 thread beside a busy one (issue 29's measurement). So
rnngen picks the count itself:

- `--threads N`, else OMP_NUM_THREADS, fixes it (`plan_threads`); under torchrun each process
  gets its share of the cores unless --threads says otherwise (torchrun sets OMP_NUM_THREADS=1
  by itself, which would leave cores idle).
- Otherwise a `Tuner` adapts it between 1 and the usable cores. It is told how long each
  unit of work took (a training step, an evaluation window, a sampled token) and now and then
  times a few units at a neighbouring count; `choose`, a pure function of those times, moves
  to another count when it is clearly faster. It starts one below the most and tries more at
  once (too many threads can cost 30x, too few at most 2x); probes back off while the choice
  holds, and a sudden slowdown probes fewer threads at once.

The thread count never changes what inference computes (measured bit for bit); gradients may
round differently at another count for some shapes, so a training run probes with forward
passes beside its steps, and only a real change of count (the machine's load changed) can
move its figures, by float rounding. This module imports no torch: the count is applied
through the `set_threads` callable given to a Tuner (`running` passes torch's).

    plan.py     plan_threads: the count a command starts with, and whether it adapts
    tuner.py    Tuner and choose: the count adapted to measured times (pure, testable)
    running.py  running (a plan applied around a block) and timed (a loop's unit reported)
"""

from rnngen.threads.plan import ThreadPlan, plan_threads, usable_cores
from rnngen.threads.running import running, timed
from rnngen.threads.tuner import (
    BASELINE,
    CHUNK_SECONDS,
    EVIDENCE_SECONDS,
    FIRST_INTERVAL,
    MARGIN,
    MARGIN_MORE,
    MAX_INTERVAL,
    PROBE_UNITS,
    RECENT,
    REJECT,
    SLOWDOWN,
    SUDDEN,
    Change,
    Tuner,
    choose,
    ladder,
)

__all__ = [
    "BASELINE",
    "CHUNK_SECONDS",
    "EVIDENCE_SECONDS",
    "FIRST_INTERVAL",
    "MARGIN",
    "MARGIN_MORE",
    "MAX_INTERVAL",
    "PROBE_UNITS",
    "RECENT",
    "REJECT",
    "SLOWDOWN",
    "SUDDEN",
    "Change",
    "ThreadPlan",
    "Tuner",
    "choose",
    "ladder",
    "plan_threads",
    "running",
    "timed",
    "usable_cores",
]
