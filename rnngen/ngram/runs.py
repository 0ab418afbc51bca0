"""Sorted runs of counted keys, on external.py's columns, in bounded memory.

Run           a sorted run of distinct keys with their counts, as two columns
merge(...)    the k-way merge of sorted runs, summing counts, a bounded block at a time
RunSet        sorted counted runs, merged fan_in at a time when there are too many
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rnngen.ngram.external import Column, Scratch
from rnngen.ngram.keys import count_at_most, group_starts, order_rows, row_min


class Run:
    """A sorted run of distinct keys (n, W) with counts (n,), as two columns."""

    def __init__(self, scratch: Scratch, width: int, count_dtype, name: str):
        self.keys = Column(scratch, np.uint64, width, f"{name}-keys")
        self.counts = Column(scratch, count_dtype, None, f"{name}-counts")

    def append(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self.keys.append(keys)
        self.counts.append(counts)

    @property
    def rows(self) -> int:
        return self.keys.rows

    def blocks(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(0, self.rows, size):
            yield self.keys.read(i, i + size), self.counts.read(i, i + size)

    def free(self) -> None:
        self.keys.free()
        self.counts.free()


def merge(
    sources: list[Iterator[tuple[np.ndarray, np.ndarray | None]]], width: int, count_dtype=None
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Merge sorted runs of distinct keys, summing the counts of equal keys.

    Each source yields (keys, counts) blocks in order (counts None when count_dtype is None:
    then equal keys are only made one). A step takes from every source's current block the
    rows up to the smallest last row among the sources that have more to come, so that every
    key it emits is complete; those pieces are sorted together (a stable sort, which merges
    sorted runs in one pass) and equal rows summed. Yields sorted, distinct (keys, counts)
    blocks whose concatenation is the merge.
    """
    counted = count_dtype is not None
    empty = (np.zeros((0, width), np.uint64), np.zeros(0, count_dtype) if counted else None)
    current: list[tuple] = [empty] * len(sources)
    done = [False] * len(sources)
    while True:
        for i, source in enumerate(sources):
            while not done[i] and current[i][0].shape[0] == 0:
                block = next(source, None)
                if block is None:
                    done[i] = True
                else:
                    current[i] = block
        live = [i for i in range(len(sources)) if current[i][0].shape[0]]
        if not live:
            return
        limits = [current[i][0][-1] for i in live if not done[i]]
        bound = row_min(limits) if limits else None
        key_pieces, count_pieces = [], []
        for i in live:
            keys, counts = current[i]
            take = keys.shape[0] if bound is None else count_at_most(keys, bound)
            key_pieces.append(keys[:take])
            count_pieces.append(counts[:take] if counted else None)
            current[i] = (keys[take:], counts[take:] if counted else None)
        if len(key_pieces) == 1:
            yield key_pieces[0], count_pieces[0]
            continue
        keys = np.concatenate(key_pieces)
        perm = order_rows(keys, runs=True)
        keys = keys[perm]
        starts = group_starts(keys)
        if not counted:
            yield keys[starts], None
            continue
        counts = np.concatenate(count_pieces)[perm]
        yield keys[starts], np.add.reduceat(counts, starts).astype(count_dtype, copy=False)


class RunSet:
    """Sorted counted runs of one kind of key, merged fan_in at a time when too many."""

    def __init__(self, scratch: Scratch, width: int, count_dtype, name: str):
        self.scratch = scratch
        self.width = width
        self.count_dtype = np.dtype(count_dtype)
        self.name = name
        self.runs: list[Run] = []

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add one sorted run of distinct keys."""
        if keys.shape[0] == 0:
            return
        run = Run(self.scratch, self.width, self.count_dtype, self.name)
        run.append(keys, counts)
        self.runs.append(run)
        if len(self.runs) > self.scratch.plan.fan_in:
            self._collapse()

    def _collapse(self) -> None:
        """Merge the runs into one (several levels when there are many)."""
        while len(self.runs) > 1:
            group, self.runs = (
                self.runs[: self.scratch.plan.fan_in],
                self.runs[self.scratch.plan.fan_in :],
            )
            merged = Run(self.scratch, self.width, self.count_dtype, self.name)
            for keys, counts in self._merged(group):
                merged.append(keys, counts)
            for run in group:
                run.free()
            self.runs.append(merged)
            if len(self.runs) <= self.scratch.plan.fan_in:
                break

    def _merged(self, runs: list[Run]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        size = max(self.scratch.plan.block // max(len(runs), 1), 1)
        return merge([run.blocks(size) for run in runs], self.width, self.count_dtype)

    def merged(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All runs merged, as sorted distinct (keys, counts) blocks; frees the runs after."""
        try:
            yield from self._merged(self.runs)
        finally:
            self.free()

    def free(self) -> None:
        for run in self.runs:
            run.free()
        self.runs = []
