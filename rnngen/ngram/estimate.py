"""Estimation of interpolated modified Kneser-Ney, exactly as KenLM's lmplz computes it, in
bounded memory.

kenlm-semantics.md (shared/reference) says what is computed; this module says in what order,
so that no step holds more than a plan's worth of memory (external.py). Step 2 is
adjusted.py's, step 4 interpolation.py's; this module runs them and step 3 between them:

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
from dataclasses import dataclass

import numpy as np

from rnngen.errors import RnngenError
from rnngen.ngram.adjusted import Tables, adjusted_tables
from rnngen.ngram.counting import TokenStream, count
from rnngen.ngram.external import Column, Scratch
from rnngen.ngram.interpolation import Level, OrderTable, interpolate

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
        tables = Tables(order, radix)
    else:
        tables = adjusted_tables(counts, order, radix, scratch, count_dtype, index_dtype)
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
        level, lower_next = interpolate(tables, k, kept, discounts[k], lower, unigram, scratch)
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
