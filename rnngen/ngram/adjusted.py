"""Step 2 of estimate.py's docstring: down the orders, every order's sorted table of keys,
its adjusted counts, and each n-gram's suffix index s_k (a column each, in bounded memory)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rnngen.ngram.external import Column, Scratch
from rnngen.ngram.keys import Codec, group_starts, rows_between, search
from rnngen.ngram.runs import RunSet, merge


class Tables:
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


def adjusted_tables(
    counts, order: int, radix: int, scratch: Scratch, count_dtype, index_dtype
) -> Tables:
    """Step 2 of estimate.py's docstring: every order's table, adjusted counts and s_k."""
    tables = Tables(order, radix)
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


def _lower_keys(tables: Tables, k: int, ends: RunSet, bos_keys: Column, scratch) -> Column:
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


def _suffixes(tables: Tables, k: int, scratch: Scratch, count_dtype, index_dtype, bos_counts):
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
