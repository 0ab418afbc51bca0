"""Step 4 of estimate.py's docstring: up the orders, each order's interpolated ln p and its
contexts' ln gamma, in blocks that never split a context; and the tables that result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnngen.ngram.adjusted import Tables
from rnngen.ngram.external import Column
from rnngen.ngram.keys import Codec, group_starts, row_less, search


@dataclass
class OrderTable:
    """The n-grams of one order, as stored for lookup (unigrams: dense, keys unused)."""

    keys: np.ndarray  # (n_k,) int64, sorted: prefix_id * radix + last_token
    logprob: np.ndarray  # (n_k,) float64, ln p(last | prefix), interpolated
    logbackoff: np.ndarray  # (n_k,) float64, ln gamma(this n-gram as context); (0,) at top order


@dataclass
class Level:
    """OrderTable's columns for one order k >= 2, as the estimator leaves them."""

    keys: Column
    logprob: Column
    logbackoff: Column | None  # None at the top order

    def take(self) -> OrderTable:
        """The level in memory, each column freed once read."""
        arrays = []
        for column in (self.keys, self.logprob, self.logbackoff):
            arrays.append(np.zeros(0) if column is None else column.read())
            if column is not None:
                column.free()
        return OrderTable(*arrays)


class _Interpolated:
    def __init__(self, level: Level, lower_backoff: Column | None):
        self.level = level
        self._lower_backoff = lower_backoff

    def pop_lower_backoff(self) -> Column | None:
        backoff, self._lower_backoff = self._lower_backoff, None
        return backoff


def interpolate(tables: Tables, k: int, kept: list[int], discounts, lower, unigram, scratch):
    """Order k's probabilities, and gamma of order k-1's contexts (step 4)."""
    codec, lower_codec, plan = tables.codecs[k], tables.codecs[k - 1], scratch.plan
    top = k == len(tables.codecs) - 1
    radix = codec.radix
    keys_out = Column(scratch, np.int64, None, f"model-keys{k}")
    logprob_out = Column(scratch, np.float64, None, f"model-logprob{k}")
    prob_out = None if top else Column(scratch, np.float64, None, f"prob{k}")
    backoff_out = None if k == 2 else Column(scratch, np.float64, None, f"model-backoff{k - 1}")
    n_contexts = kept[k - 1]
    d_of = np.array((0.0, *discounts))
    gather, lower_rows = _lower_gather(lower, tables.suffix[k], kept[k], plan, scratch)
    contexts = None if k == 2 else _Contexts(tables.keys[k - 1], plan.block)
    next_context = 0
    for begin, end in _context_blocks(tables.keys[k], codec, lower_codec, kept[k], plan.block):
        keys = tables.keys[k].read(begin, end)
        prefix, last = codec.split(keys, lower_codec)
        starts = group_starts(prefix)  # where each context's n-grams begin
        sizes = np.diff(np.append(starts, prefix.shape[0]))
        # (b,) row of each n-gram's context in order k-1 (at k = 2, the token id)
        distinct = (
            prefix[starts, 0].astype(np.int64) if k == 2 else contexts.rows_of(prefix[starts])
        )
        context = np.repeat(distinct, sizes)
        raw = tables.adjusted[k].read(begin, end)
        first_context = int(context[0])
        local = context - first_context
        spans = int(local[-1]) + 1
        a = raw.astype(np.float64)
        d = d_of[np.minimum(raw, 3)]
        denom = np.bincount(local, weights=a, minlength=spans)
        gamma = np.ones(spans)
        seen = denom > 0
        gamma[seen] = np.bincount(local, weights=d, minlength=spans)[seen] / denom[seen]
        prob = gather(begin, end)  # p(x | h'), becoming p(x | h)
        prob *= gamma[local]
        a -= d
        a /= denom[local]
        prob += a
        if k == 2:
            unigram.logbackoff[first_context : first_context + spans] = np.log(gamma)
        else:
            backoff_out.append(np.zeros(first_context - next_context))
            backoff_out.append(np.log(gamma))
        next_context = first_context + spans
        keys_out.append(context * radix + last.astype(np.int64))
        logprob_out.append(np.log(prob))
        if prob_out is not None:
            prob_out.append(prob)
    if backoff_out is not None:
        backoff_out.append(np.zeros(n_contexts - next_context))
    if lower_rows is not None:
        lower_rows.free()
    level = Level(keys_out, logprob_out, None)
    return _Interpolated(level, backoff_out), prob_out


def _lower_gather(lower, suffix: Column, rows: int, plan, scratch):
    """A function (begin, end) -> p(x | h') of order k's rows begin..end, through s_k.

    Order k-1's probabilities are gathered from memory when they fit plan.table rows (or
    are order 1's dense array); otherwise a pass per slice of them fills a column of p(x|h')
    in order k's order first. Returns it and that column (None if not made)."""
    if isinstance(lower, np.ndarray) or lower.rows <= plan.table:
        probs = lower if isinstance(lower, np.ndarray) else lower.read()
        return (lambda begin, end: probs[suffix.read(begin, end)]), None
    column: Column | None = None
    for lo in range(0, lower.rows, plan.table):
        hi = min(lo + plan.table, lower.rows)
        probs = lower.read(lo, hi)
        partial = Column(scratch, np.float64, None, "lower")
        previous = column.blocks(plan.block, 0, rows) if column is not None else None
        for begin in range(0, rows, plan.block):
            index = suffix.read(begin, min(begin + plan.block, rows)).astype(np.int64)
            inside = (index >= lo) & (index < hi)
            part = np.zeros(index.size)
            part[inside] = probs[index[inside] - lo]
            if previous is not None:
                part += next(previous)  # exact: every row has one nonzero term
            partial.append(part)
        if column is not None:
            column.free()
        column = partial
    return (lambda begin, end: column.read(begin, end).copy()), column


def _context_blocks(keys: Column, codec: Codec, lower: Codec, rows: int, size: int):
    """(begin, end) row ranges of about `size` rows that never split a context."""
    begin = 0
    while begin < rows:
        end = min(begin + size, rows)
        while end < rows:
            prefix = codec.prefix(keys.read(begin, end + 1), lower)
            cut = int(group_starts(prefix)[-1])  # where the context running at `end` starts
            if cut > 0:
                end = begin + cut
                break
            end = min(begin + 2 * (end - begin), rows)  # one context fills the block: grow it
        yield begin, end
        begin = end


class _Contexts:
    """Rows of sorted, nondecreasing query keys in a sorted column, reading it in order."""

    def __init__(self, column: Column, size: int):
        self.column, self.size = column, size
        self.base = 0  # row of window[0]
        self.next = 0  # next row of the column to read
        self.window = np.zeros((0, column.width), np.uint64)

    def rows_of(self, queries: np.ndarray) -> np.ndarray:
        last = queries[-1]
        while self.next < self.column.rows and (
            self.window.shape[0] == 0 or row_less(self.window[-1], last)
        ):
            more = self.column.read(self.next, self.next + self.size)
            self.next += more.shape[0]
            self.window = np.concatenate([self.window, more])
        found = search(self.window, queries)
        rows = found + self.base
        drop = int(found[-1])
        self.window = self.window[drop:]
        self.base += drop
        return rows
