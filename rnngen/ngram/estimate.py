"""Estimation of interpolated modified Kneser-Ney, exactly as KenLM's lmplz computes it, in
bounded memory.

kenlm-semantics.md (shared/reference) says what is computed; this module says in what order,
so that no step holds more than a plan's worth of memory (external.py):

1. count (counting.py): the top order's n-grams, as sorted runs of packed keys (keys.py),
   merged into one table of distinct n-grams with raw counts (= adjusted counts at the top).
2. down the orders, k = top .. 2, from order k's sorted table:
   * order k-1's n-grams are the first k-1 ids of order k's (a sorted stream, so only
     consecutive duplicates go) together with the end grams; merged, they are its table;
   * each k-gram's suffix (its last k-1 ids) is looked up there: its index s_k, and
     a(k-1 gram) = N1+(. g) = how many k-grams have it as their suffix (a bincount of s_k),
     except for n-grams starting with BOS, whose adjusted count is their raw count.
3. discounts per order from counts of adjusted counts (integers: exact however summed).
4. up the orders, k = 2 .. top: order k's table in blocks that never split a context,
   p(x|h) = (a - D(a)) / denom(h) + gamma(h) p(x|h'), with p(x|h') gathered through s_k from
   order k-1's probabilities; gamma(h) is the backoff written for order k-1.
Every sum of floats is a bincount over one whole context, in the order of its n-grams, as the
in-memory estimator before this one did it; so the result is the same bit for bit whether the
plan kept everything in memory or spilled every step to disk.

Stored per order k >= 2 (`Level`, as columns): keys context_id * radix + last_token, sorted,
where context_id is the row of the (k-1)-gram prefix in order k-1 (a token id at k = 2); ln p
interpolated; ln gamma of the n-gram as a context (none at the top order). Order 1 is dense.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnngen.errors import RnngenError
from rnngen.ngram.counting import TokenStream, count
from rnngen.ngram.external import Column, RunSet, Scratch, merge
from rnngen.ngram.keys import Codec, group_starts, row_less, rows_between, search

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # what KenLM's --discount_fallback uses


@dataclass(frozen=True)
class NGramStats:
    """What was built, for reports: sizes, discounts, and which orders fell back."""

    order: int
    vocab_size: int  # predictable ids (stream: the tokenizer's; sentence: words + </s> + <unk>)
    ngram_counts: dict[int, int]  # order -> n-grams an ARPA file lists (unigrams: all ids)
    discounts: dict[int, tuple[float, float, float]]  # order -> (D1, D2, D3+)
    fallback_orders: list[int]  # orders whose discounts fell back to FALLBACK_DISCOUNTS
    build_seconds: float
    train_tokens: int  # predicted training tokens (sentence mode: words + one </s> per line)
    sentence_mode: bool  # True when BOS (= vocab_size) may start a context
    memory_budget: int = 0  # bytes the estimator was given (0: not recorded)
    spilled_bytes: int = 0  # bytes it wrote to its scratch directory


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


def estimate(
    stream: TokenStream, order: int, vocab_size: int, *, sentence_mode: bool, scratch: Scratch
) -> tuple[NGramStats, OrderTable, list[Level]]:
    """Count, adjust, discount and interpolate as kenlm-semantics.md says.

    The n-grams are the windows of up to `order` ids of the stream (ids in [0, vocab_size],
    vocab_size being BOS) that end at a non-BOS position and hold no BOS except as their
    first id. In stream mode (not sentence_mode) those that start with BOS are dropped from
    the result: stream scoring never asks for them.
    """
    start = time.perf_counter()
    radix, bos = vocab_size + 1, vocab_size
    if (stream.size + 1) * radix >= 2**63:
        raise RnngenError("n-gram model too large: tokens x vocabulary size must stay below 2**63")
    small = stream.size + 1 < 2**32
    count_dtype = np.uint32 if small else np.uint64
    index_dtype = np.uint32 if small else np.int64
    plan = scratch.plan
    counts = count(stream, order, radix, scratch, count_dtype)
    if order == 1:
        adjusted1 = counts.unigram_counts
        adjusted1[bos] = 0
        tables = _Tables(order, radix)
    else:
        tables = _down(counts, order, radix, scratch, count_dtype, index_dtype)
        adjusted1 = tables.unigram_adjusted
        adjusted1[bos] = 0  # BOS is never predicted
    kept = [0, radix] + [
        tables.keys[k].rows - (0 if sentence_mode else tables.bos_rows[k])
        for k in range(2, order + 1)
    ]

    discounts, fallback_orders = {}, []
    for k in range(1, order + 1):
        histogram = (
            _histogram(adjusted1)
            if k == 1
            else sum(
                (_histogram(a) for a in tables.adjusted[k].blocks(plan.block, 0, kept[k])),
                np.zeros(5, dtype=np.int64),
            )
        )
        discounts[k], fell_back = _discounts(histogram)
        if fell_back:
            fallback_orders.append(k)

    # Order 1, dense: p(x) = (a - D(a)) / total + gamma() / V.
    a1 = adjusted1[:vocab_size].astype(np.float64)  # (V,)
    d1 = np.array((0.0, *discounts[1]))[np.minimum(adjusted1[:vocab_size], 3)]  # (V,)
    total = a1.sum()
    gamma0 = d1.sum() / total if total > 0 else 1.0
    lower_prob = (a1 - d1) / max(total, 1.0) + gamma0 / vocab_size  # (V,) p(x)
    unigram = OrderTable(np.arange(0), np.append(np.log(lower_prob), 0.0), np.zeros(radix))
    levels: list[Level] = []
    lower: np.ndarray | Column = lower_prob
    for k in range(2, order + 1):
        level, lower_next = _interpolate(tables, k, kept, discounts[k], lower, unigram, scratch)
        if k > 2:
            levels[-1].logbackoff = level.pop_lower_backoff()
            lower.free()
            tables.free_order(k - 1)
        levels.append(level.level)
        lower = lower_next
    if isinstance(lower, Column):
        lower.free()
    tables.free_order(order)

    stats = NGramStats(
        order=order,
        vocab_size=vocab_size,
        ngram_counts={1: vocab_size + int(sentence_mode)}
        | {k: kept[k] for k in range(2, order + 1)},
        discounts=discounts,
        fallback_orders=fallback_orders,
        build_seconds=time.perf_counter() - start,
        train_tokens=counts.tokens,
        sentence_mode=sentence_mode,
        memory_budget=plan.budget,
        spilled_bytes=scratch.written,
    )
    return stats, unigram, levels


class _Tables:
    """Per order k (index k; orders >= 2): sorted keys, adjusted counts, suffix indices."""

    def __init__(self, order: int, radix: int):
        self.codecs = [None] + [Codec(radix, k) for k in range(1, order + 1)]
        self.keys: list[Column | None] = [None] * (order + 1)
        self.adjusted: list[Column | None] = [None] * (order + 1)
        self.suffix: list[Column | None] = [None] * (order + 1)
        self.bos_rows = [0] * (order + 1)  # rows starting with BOS: the last ones of an order
        self.unigram_adjusted: np.ndarray | None = None

    def free_order(self, k: int) -> None:
        for columns in (self.keys, self.adjusted, self.suffix):
            if columns[k] is not None:
                columns[k].free()
                columns[k] = None


def _down(counts, order: int, radix: int, scratch: Scratch, count_dtype, index_dtype) -> _Tables:
    """Step 2 of the module docstring: every order's table, adjusted counts and s_k."""
    tables = _Tables(order, radix)
    codecs = tables.codecs
    top_keys = Column(scratch, np.uint64, codecs[order].words, f"keys{order}")
    top_adjusted = Column(scratch, count_dtype, None, f"adjusted{order}")
    bos_rows = 0
    for keys, raw in counts.top.merged():
        top_keys.append(keys)
        top_adjusted.append(raw)
        bos_rows += int(np.count_nonzero(codecs[order].first_at_least(keys, radix - 1)))
    tables.keys[order], tables.adjusted[order], tables.bos_rows[order] = (
        top_keys,
        top_adjusted,
        bos_rows,
    )
    for k in range(order, 1, -1):
        bos_keys = bos_counts = None
        if k > 2:
            bos_keys, bos_counts = _columns_of(counts.bos[k - 1], scratch, f"bos{k - 1}")
            tables.keys[k - 1] = _lower_keys(tables, k, counts.ends[k - 1], bos_keys, scratch)
            tables.bos_rows[k - 1] = bos_keys.rows
        suffix, adjusted = _suffixes(tables, k, scratch, count_dtype, index_dtype, bos_counts)
        tables.suffix[k] = suffix
        if k > 2:
            tables.adjusted[k - 1] = adjusted
            bos_keys.free()
            bos_counts.free()
        else:
            tables.unigram_adjusted = adjusted
    return tables


def _columns_of(runs: RunSet, scratch: Scratch, name: str) -> tuple[Column, Column]:
    keys = Column(scratch, np.uint64, runs.width, f"{name}-keys")
    counts = Column(scratch, runs.count_dtype, None, f"{name}-counts")
    for block_keys, block_counts in runs.merged():
        keys.append(block_keys)
        counts.append(block_counts)
    return keys, counts


def _lower_keys(tables: _Tables, k: int, ends: RunSet, bos_keys: Column, scratch) -> Column:
    """Order k-1's sorted keys: the distinct prefixes of order k's, the end grams, and the
    BOS grams (already among the first two, but listed for their counts)."""
    codec, lower = tables.codecs[k], tables.codecs[k - 1]
    size = scratch.plan.block

    def prefixes() -> Iterator[tuple[np.ndarray, None]]:
        previous = None
        for block in tables.keys[k].blocks(size):
            keys = codec.prefix(block, lower)
            keys = keys[group_starts(keys)]
            if previous is not None and (keys[0] == previous).all():
                keys = keys[1:]
            if keys.shape[0]:
                previous = keys[-1].copy()
                yield keys, None

    def keys_only(blocks) -> Iterator[tuple[np.ndarray, None]]:
        for keys, _ in blocks:
            yield keys, None

    out = Column(scratch, np.uint64, lower.words, f"keys{k - 1}")
    sources = [prefixes(), keys_only(ends.merged()), ((b, None) for b in bos_keys.blocks(size))]
    for keys, _ in merge(sources, lower.words):
        out.append(keys)
    return out


def _suffixes(tables: _Tables, k: int, scratch: Scratch, count_dtype, index_dtype, bos_counts):
    """s_k (each k-gram's suffix's row in order k-1) and order k-1's adjusted counts: how many
    k-grams have each (k-1)-gram as their suffix, except for the last rows, the (k-1)-grams
    that start with BOS, whose adjusted count is their raw count (bos_counts).

    The rows of order k-1 are held for random access a slice at a time (plan.table rows);
    with several slices, each pass fills the k-grams whose suffix falls in its slice and adds
    to the previous pass's partial column (every k-gram gets its index from exactly one).
    At k = 2 the suffix is a token id and order 1 is dense: no lookup.
    """
    codec, lower, plan = tables.codecs[k], tables.codecs[k - 1], scratch.plan
    if k == 2:
        suffix = Column(scratch, index_dtype, None, "suffix2")
        left = np.zeros(codec.radix, dtype=np.int64)
        for block in tables.keys[2].blocks(plan.block):
            last = codec.last(block).astype(np.int64)
            suffix.append(last)
            left += np.bincount(last, minlength=codec.radix)
        return suffix, left
    table_rows = tables.keys[k - 1].rows
    slices = [(lo, min(lo + plan.table, table_rows)) for lo in range(0, table_rows, plan.table)]
    adjusted = Column(scratch, count_dtype, None, f"adjusted{k - 1}")
    suffix: Column | None = None
    for lo, hi in slices:
        table = tables.keys[k - 1].read(lo, hi)
        left = np.zeros(hi - lo, dtype=np.int64)
        partial = Column(scratch, index_dtype, None, f"suffix{k}")
        previous = suffix.blocks(plan.block) if suffix is not None else None
        for block in tables.keys[k].blocks(plan.block):
            queries = codec.suffix(block, lower)
            if len(slices) == 1:
                found = search(table, queries)
                partial.append(found)
            else:
                inside = rows_between(queries, table[0], table[-1])
                found = search(table, queries[inside])
                part = np.zeros(queries.shape[0], dtype=index_dtype)
                part[inside] = found + lo
                if previous is not None:
                    part += next(previous)
                partial.append(part)
            left += np.bincount(found, minlength=hi - lo)
        offset = table_rows - bos_counts.rows  # the first BOS gram's row
        if max(offset, lo) < hi:
            left[max(offset, lo) - lo :] = bos_counts.read(max(offset, lo) - offset, hi - offset)
        if suffix is not None:
            suffix.free()
        suffix = partial
        adjusted.append(left.astype(count_dtype))
    if suffix is None:
        suffix = Column(scratch, index_dtype, None, f"suffix{k}")
    return suffix, adjusted


# --- step 4: interpolation ----------------------------------------------------------------------


class _Interpolated:
    def __init__(self, level: Level, lower_backoff: Column | None):
        self.level = level
        self._lower_backoff = lower_backoff

    def pop_lower_backoff(self) -> Column | None:
        backoff, self._lower_backoff = self._lower_backoff, None
        return backoff


def _interpolate(tables: _Tables, k: int, kept: list[int], discounts, lower, unigram, scratch):
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


def _histogram(adjusted: np.ndarray) -> np.ndarray:
    """How many adjusted counts are 1, 2, 3, 4 (index 1..4), shape (5,)."""
    small = adjusted[adjusted <= 4]
    return np.bincount(small.astype(np.int64), minlength=5)[:5]


def _discounts(n: np.ndarray) -> tuple[tuple[float, float, float], bool]:
    """(D1, D2, D3+) from counts of adjusted counts n[1..4], and whether it fell back.

    Chen & Goodman's estimate, as KenLM: it falls back to FALLBACK_DISCOUNTS when n1, n2 or n3
    is 0 or a D_j leaves (0, j]. (KenLM accepts D_j = 0; we do not, because it can leave a
    context with gamma = 0 and so give some token probability 0.)
    """
    n = n.astype(np.float64)
    if n[1] > 0 and n[2] > 0 and n[3] > 0:
        y = n[1] / (n[1] + 2 * n[2])
        d = tuple(float(j - (j + 1) * y * n[j + 1] / n[j]) for j in (1, 2, 3))
        if all(0 < d[j - 1] <= j for j in (1, 2, 3)):
            return d, False
    return FALLBACK_DISCOUNTS, True
