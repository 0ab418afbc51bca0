"""The Tuner: the thread count adapted to the load from the measured time of each unit of
work, and `choose`, the pure function of those times that decides."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# Another count must take this much less time per unit to be chosen: more for more threads,
# since more threads than the free cores cost up to 30x, and fewer threads at most 2x.
MARGIN, MARGIN_MORE = 0.10, 0.25
CHUNK_SECONDS = 0.02  # units shorter than this (a sampled token) are pooled into one
RECENT = 5  # units at the current count that a probe is compared with
SUDDEN = 3  # units that show a slowdown (they are the comparison after one)
PROBE_UNITS = 3  # units timed at the candidate count (just one when it is clearly slower)
REJECT = 1.5  # a candidate unit this much slower than the current count's ends the probe
SLOWDOWN = 1.5  # the last units this much slower than the ones before: probe fewer threads
EVIDENCE_SECONDS = 1.0  # slow units: this much of their time is evidence enough
BASELINE = 16  # units kept at the current count
FIRST_INTERVAL, MAX_INTERVAL = 2.0, 30.0  # seconds between probes, doubling while one holds


def ladder(most: int) -> tuple[int, ...]:
    """The counts a Tuner moves between, most first: all, all but one (one busy neighbour),
    then halves down to 1. For 2 cores: (2, 1)."""
    counts, n = {most, max(most - 1, 1)}, most
    while n > 1:
        n //= 2
        counts.add(n)
    return tuple(sorted(counts, reverse=True))


def choose(current: int, times: Mapping[int, Sequence[float]], margin: float = MARGIN,
           margin_more: float = MARGIN_MORE) -> int:  # fmt: skip
    """The thread count to run at, from seconds per unit of work measured recently at each
    count: the count with the lowest median, if it beats `current`'s by more than `margin`
    (`margin_more` when it has more threads), else `current`: noise must not make the choice
    flap. Pure, so tests can inject times."""
    medians = {n: statistics.median(t) for n, t in times.items() if len(t)}
    if not medians:
        return current
    best = min(medians, key=lambda n: (medians[n], n))  # a tie goes to fewer threads
    if current not in medians:
        return best
    needed = margin_more if best > current else margin
    return best if medians[best] < (1 - needed) * medians[current] else current


@dataclass(frozen=True)
class Change:
    """The Tuner moved from `before` threads to `after`, which ran `speedup` times as fast."""

    before: int
    after: int
    speedup: float

    def describe(self) -> str:
        ran = f"{self.speedup:.1f}x as fast as {self.before}"
        if self.after < self.before:
            return f"threads: {self.after} now, {ran}: other programs are busy on these cores"
        return f"threads: {self.after} now, {ran}: the cores are free again"


class Tuner:
    """Adapts the thread count to the load while a loop runs.

    Tell it how long each unit of work took (`record`); it calls `set_threads` whenever the
    count should change. Without `probe` it probes with the loop's own next units, run at the
    candidate count. With `probe` (a callable that does a fixed piece of work and returns
    its seconds) it times that at both counts instead, and the loop's units always run at the
    chosen count: training uses this, so probing never changes the gradients' rounding.
    `clock` is injectable for tests.
    """

    def __init__(self, most: int, set_threads: Callable[[int], None], start: int | None = None,
                 probe: Callable[[], float] | None = None,
                 on_change: Callable[[Change], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.ladder = ladder(most)
        self.set_threads, self.probe, self.on_change = set_threads, probe, on_change
        self.clock = clock
        # Without a start, one count below the most: more threads than the free cores can
        # cost 30x, fewer than them at most 2x, and the first probe tries more at once.
        start = start or self.ladder[min(1, len(self.ladder) - 1)]
        self.current = min(self.ladder, key=lambda n: abs(n - start))
        # (seconds per unit, seconds) of the latest units at `current`
        self.recent: deque[tuple[float, float]] = deque(maxlen=BASELINE)
        self.trial: int | None = None  # the count the loop's units are probing, if any
        self.trial_times: list[float] = []
        self.window = RECENT  # the latest units at `current` that a probe is compared with
        self.kind: str | None = None
        self.interval, self.next_probe = FIRST_INTERVAL, clock()  # the first: at once
        self._fewer_next = True  # alternate directions between two neighbours
        self._warm = False  # the first unit of a kind (kernels built) is not compared
        self._seen = {self.current}  # counts that ran this kind: kernels built for them
        self._probed: set[int] = set()  # counts `probe` ran at
        self._pool = [0.0, 0.0]  # seconds and units of short units not yet compared
        self.units = {n: 0 for n in self.ladder}  # units run at each count (for reports)
        self.probes = 0
        set_threads(self.current)

    @property
    def threads(self) -> int:
        """The count the next unit runs at."""
        return self.current if self.trial is None else self.trial

    def record(self, seconds: float, units: float = 1.0, kind: str | None = None) -> Change | None:
        """One unit of work took `seconds` for `units` (tokens, say: times are compared per
        unit). `kind` names the work: a new kind starts the comparison afresh. Units shorter
        than CHUNK_SECONDS are pooled until they add up to it. Returns the Change when the
        count changed."""
        self.units[self.threads] += 1
        if kind != self.kind:
            self.kind, self._warm, self._pool = kind, False, [0.0, 0.0]
            self._abandon_trial()
            self.recent.clear()
            self._seen = {self.current}
        if not self._warm:  # the first unit of a kind, or at a count new to it
            self._warm = True
            self._seen.add(self.threads)
            return None
        self._pool[0] += seconds
        self._pool[1] += units
        if self._pool[0] < CHUNK_SECONDS:
            return None
        seconds, units = self._pool
        self._pool = [0.0, 0.0]
        per_unit = seconds / max(units, 1e-12)
        if self.trial is not None:
            self.trial_times.append(per_unit)
            reference = self._latest(self.window)
            if len(self.trial_times) < PROBE_UNITS and per_unit <= REJECT * statistics.median(
                reference
            ):
                return None
            return self._decide(self.trial, reference, self.trial_times)
        self.recent.append((per_unit, seconds))
        candidate = self._due()
        if candidate is None:
            return None
        if self.probe is None:
            self.trial, self.trial_times = candidate, []
            self._warm = candidate in self._seen
            self.set_threads(candidate)
            return None
        return self._probe_beside(candidate)

    def _latest(self, n: int) -> list[float]:
        return [per_unit for per_unit, _ in list(self.recent)[-n:]]

    def _enough(self) -> bool:
        """Enough units at the current count to compare a probe with: RECENT, or two that
        took EVIDENCE_SECONDS (a step beside a busy program can take seconds). A probe
        beside the loop times both counts itself: it needs none."""
        if self.probe is not None:
            return True
        seconds = sum(s for _, s in self.recent)
        return len(self.recent) >= RECENT or (len(self.recent) >= 2 and seconds >= EVIDENCE_SECONDS)

    def _slowed(self) -> int:
        """How many of the latest units (up to SUDDEN) each took SLOWDOWN times the median of
        the units before them, if that shows a slowdown: all SUDDEN of them, or fewer that
        already cost EVIDENCE_SECONDS. 0 otherwise."""
        if len(self.recent) < SUDDEN + 2:
            return 0
        recent = list(self.recent)
        bound = SLOWDOWN * statistics.median(p for p, _ in recent[:-SUDDEN])
        slow = 0
        while slow < SUDDEN and recent[-1 - slow][0] > bound:
            slow += 1
        seconds = sum(s for _, s in recent[len(recent) - slow :])
        return slow if slow == SUDDEN or (slow and seconds >= EVIDENCE_SECONDS) else 0

    def _due(self) -> int | None:
        """The count to probe now, if a probe is due: on schedule, or at once (fewer threads)
        when the latest units ran much slower than the ones before them."""
        slowed = self._slowed()
        if not slowed and (self.clock() < self.next_probe or not self._enough()):
            return None
        self.window = slowed or RECENT  # after a slowdown only its units show the pace
        i = self.ladder.index(self.current)
        fewer = self.ladder[i + 1] if i + 1 < len(self.ladder) else None
        more = self.ladder[i - 1] if i > 0 else None
        if slowed and fewer is None:  # nothing to try: compare with the new pace from now on
            self._keep_latest()
            return None
        self.probes += 1
        if slowed or more is None:
            return fewer
        if fewer is None:
            return more
        self._fewer_next = not self._fewer_next
        return more if self._fewer_next else fewer

    def _probe_beside(self, candidate: int) -> Change | None:
        """Time `probe` at the current and the candidate count, alternately (once untimed
        first at a count it never ran at: that builds kernels for it)."""
        for count in (self.current, candidate):
            if count not in self._probed:
                self._probed.add(count)
                self.set_threads(count)
                self.probe()
        times: dict[int, list[float]] = {self.current: [], candidate: []}
        for _ in range(PROBE_UNITS):
            for count in (self.current, candidate):
                self.set_threads(count)
                times[count].append(self.probe())
            if times[candidate][-1] > REJECT * times[self.current][-1]:
                break
        self.set_threads(self.current)
        return self._decide(candidate, times[self.current], times[candidate])

    def _decide(self, candidate: int, reference: list[float], trial: list[float]) -> Change | None:
        self.trial = None
        chosen = choose(self.current, {self.current: reference, candidate: trial})
        if chosen == self.current:
            self.set_threads(self.current)
            self._keep_latest()
            self.interval = min(2 * self.interval, MAX_INTERVAL)
            self.next_probe = self.clock() + self.interval
            return None
        change = Change(
            self.current, chosen, statistics.median(reference) / statistics.median(trial)
        )
        self.current = chosen
        self.set_threads(chosen)
        self.recent.clear()  # the new count's units come next (a probe's are not units)
        if self.probe is None:
            self.recent.extend((t, t) for t in trial)  # seconds roughly: only sums use them
        self.interval = FIRST_INTERVAL
        self.next_probe = self.clock() + self.interval
        if self.on_change is not None:
            self.on_change(change)
        return change

    def _keep_latest(self) -> None:
        """Forget the units before the latest pace: after a slowdown the older, faster ones
        would make every later unit look like another slowdown."""
        self.recent = deque(list(self.recent)[-self.window :], maxlen=BASELINE)

    def _abandon_trial(self) -> None:
        if self.trial is not None:
            self.trial = None
            self.set_threads(self.current)
