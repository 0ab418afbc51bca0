"""Counting: the top order's n-grams of a token stream, a chunk of positions at a time.

The stream S holds ids in [0, vocab_size] where vocab_size is BOS (stream mode: one BOS
before the ids; sentence mode: one before each sentence). A window S[i..j] of length k is an
n-gram when i >= 0, S[j] is not BOS and no BOS lies in S[i+1..j]. Only the top order's are
counted from the text; every lower order follows from it (see estimate.py), given two small
sets per order k < top, also collected here:
  * BOS grams: the n-grams that start with BOS, with their raw counts (their adjusted count);
  * end grams: the n-grams followed by nothing or by BOS, the only ones that are not the
    first k ids of an (k+1)-gram.
In stream mode each of those is a single n-gram per order.

Each chunk's keys are sorted and counted (np.sort: the top order's keys of rnngen's default
tokenizers fit one 64-bit word) into a run; runs stay in memory or spill as the plan allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnngen.errors import RnngenError
from rnngen.ngram import pages
from rnngen.ngram.external import Scratch
from rnngen.ngram.keys import Codec, group_starts, sort_rows
from rnngen.ngram.runs import RunSet


class TokenStream:
    """S, read in pieces: ids (any integer array, memory-mapped ones too) behind an optional
    BOS; every id is checked to lie in [0, limit) as it is read."""

    def __init__(self, ids: np.ndarray, bos: int, limit: int, *, leading_bos: bool, what: str):
        self.ids = ids
        self.bos = bos
        self.limit = limit
        self.lead = int(leading_bos)
        self.size = len(ids) + self.lead
        self.what = what

    def read(self, start: int, stop: int) -> np.ndarray:
        """S[start:stop] as uint64."""
        out = np.empty(max(stop - start, 0), dtype=np.uint64)
        if out.size == 0:
            return out
        if start < self.lead:
            out[0] = self.bos
        lo, hi = max(start - self.lead, 0), stop - self.lead
        if hi > lo:
            piece = self.ids[lo:hi]
            values = np.asarray(piece)
            if values.size and (values.min() < 0 or values.max() >= self.limit):
                raise RnngenError(
                    f"{self.what} must lie in [0, {self.limit}); found "
                    f"{values.min()}..{values.max()}"
                )
            out[out.size - (hi - lo) :] = values
            pages.release(piece)
        return out


@dataclass
class Counts:
    """What counting found: the top order's runs, and per order k < top its BOS and end grams
    (index k of `bos` and `ends`; None below 2), the tokens predicted, and for order 1 only
    the raw unigram counts."""

    top: RunSet | None
    bos: list[RunSet | None]
    ends: list[RunSet | None]
    tokens: int
    unigram_counts: np.ndarray | None  # (radix,) raw counts, order 1 models only


def count(stream: TokenStream, order: int, radix: int, scratch: Scratch, count_dtype) -> Counts:
    """Count the stream's n-grams of the top order (and the BOS and end grams below it)."""
    bos = radix - 1
    codecs = [None] + [Codec(radix, k) for k in range(1, order + 1)]
    if order == 1:
        counts = np.zeros(radix, dtype=np.int64)
        for start in range(0, stream.size, scratch.plan.chunk):
            tokens = stream.read(start, min(start + scratch.plan.chunk, stream.size))
            counts += np.bincount(tokens.astype(np.int64), minlength=radix)
        tokens = int(counts[:bos].sum())
        return Counts(None, [None, None], [None, None], tokens, counts)
    top = RunSet(scratch, codecs[order].words, count_dtype, f"count{order}")
    bos_sets = [None, None] + [
        RunSet(scratch, codecs[k].words, count_dtype, f"bos{k}") for k in range(2, order)
    ]
    end_sets = [None, None] + [
        RunSet(scratch, codecs[k].words, count_dtype, f"end{k}") for k in range(2, order)
    ]
    tokens_seen = 0
    n, chunk, reach = stream.size, scratch.plan.chunk, order - 1
    for a in range(0, n, chunk):
        b = min(a + chunk, n)  # this chunk's n-grams end at j in [a, b)
        lo = max(a - reach, 0)
        tokens = stream.read(lo, min(b + 1, n))  # (m,) S[lo : b+1], one past for end grams
        is_bos = tokens == bos
        ends = np.arange(a, b) - lo  # local positions of this chunk's ends
        if not is_bos[1:].any():  # stream mode: at most S[0] is BOS, every window counts
            tokens_seen += b - a - int(is_bos[a - lo : b - lo].sum())
            _count_top(tokens, ends, None, None, lo, codecs[order], top)
            for k in range(2, order):
                if b == n and n - 1 >= k - 1:  # the end gram: the last k ids
                    _add_windows(tokens, np.array([n - k - lo]), codecs[k], end_sets[k])
                if lo == 0 and is_bos[0] and a <= k - 1 < b:  # the BOS gram S[0 : k]
                    _add_windows(tokens, np.array([0]), codecs[k], bos_sets[k])
            continue
        tokens_seen += int(np.count_nonzero(~is_bos[a - lo : b - lo]))
        # run[p]: how many ids up to local position p are not BOS, back to the last BOS
        where = np.where(is_bos, np.arange(tokens.size), -1)
        run = np.arange(tokens.size) - np.maximum.accumulate(where)  # (m,)
        _count_top(tokens, ends, run, is_bos, lo, codecs[order], top)
        for k in range(2, order):
            valid = _valid(ends, run, is_bos, lo, k)
            at_bos = valid & is_bos[np.maximum(ends - k + 1, 0)]
            following = ends + 1
            at_end = valid & (
                (following + lo >= n) | is_bos[np.minimum(following, tokens.size - 1)]
            )
            _add_windows(tokens, ends[at_bos] - k + 1, codecs[k], bos_sets[k])
            _add_windows(tokens, ends[at_end] - k + 1, codecs[k], end_sets[k])
    return Counts(top, bos_sets, end_sets, tokens_seen, None)


def _valid(ends: np.ndarray, run: np.ndarray, is_bos: np.ndarray, lo: int, k: int) -> np.ndarray:
    """Which windows of length k ending at the local positions `ends` are n-grams."""
    return (ends + lo >= k - 1) & ~is_bos[ends] & (run[ends] >= k - 1)


def _count_top(tokens, ends, run, is_bos, lo, codec: Codec, runs: RunSet) -> None:
    k = codec.order
    ends = ends[ends + lo >= k - 1]  # windows that start at or after S[0]
    if ends.size == 0:
        return
    first = int(ends[0]) - k + 1
    keys = codec.windows(tokens[first:], ends.size)  # windows ending at ends[0], ends[0]+1, ..
    if run is not None:
        valid = ~is_bos[ends] & (run[ends] >= k - 1)
        if not valid.all():
            keys = keys[valid]
    _add_sorted(sort_rows(keys) if not codec.narrow else _sort_in_place(keys), runs)


def _sort_in_place(keys: np.ndarray) -> np.ndarray:
    keys[:, 0].sort()
    return keys


def _add_windows(tokens: np.ndarray, starts: np.ndarray, codec: Codec, runs: RunSet) -> None:
    if starts.size == 0:
        return
    matrix = tokens[starts[:, None] + np.arange(codec.order)]  # (m, k) few: one per sentence
    _add_sorted(sort_rows(codec.pack(matrix)), runs)


def _add_sorted(keys: np.ndarray, runs: RunSet) -> None:
    starts = group_starts(keys)
    counts = np.diff(np.append(starts, keys.shape[0])).astype(runs.count_dtype)
    runs.add(keys[starts], counts)
