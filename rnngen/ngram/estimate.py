"""Estimation of interpolated modified Kneser-Ney, exactly as KenLM's lmplz computes it.

Counting, adjusted counts, discounts and interpolation (shared/reference/kenlm-semantics.md),
kept apart from rnngen.ngram, which looks the estimates up. Everything is vectorized: each order's
n-grams are counted by sorting one int64 key per position, prefix_id * radix + last_token, so no
Python code runs per token and the keys fit in 64 bits whatever the order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from rnngen.errors import RnngenError

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


@dataclass
class OrderTable:
    """The n-grams of one order, as stored for lookup (unigrams: dense, keys unused)."""

    keys: np.ndarray  # (n_k,) int64, sorted: prefix_id * radix + last_token
    logprob: np.ndarray  # (n_k,) float64, ln p(last | prefix), interpolated
    logbackoff: np.ndarray  # (n_k,) float64, ln gamma(this n-gram as context); (0,) at top order


def estimate(
    stream: np.ndarray, order: int, vocab_size: int, *, sentence_mode: bool
) -> tuple[NGramStats, OrderTable, list[OrderTable]]:
    """Count, adjust, discount and interpolate as kenlm-semantics.md says.

    stream: (T,) int64 ids in [0, vocab_size], where vocab_size is BOS. The n-grams are the
    windows of up to `order` ids ending at every non-BOS position that hold no BOS except as
    their first id, i.e. never reach back past a sentence start.
    """
    start = time.perf_counter()
    radix, bos = vocab_size + 1, vocab_size
    if (stream.size + 1) * radix >= 2**63:
        raise RnngenError("n-gram model too large: tokens x vocabulary size must stay below 2**63")
    # Index by order; order 1 is dense (ids are token ids, BOS included).
    keys = [None, np.arange(radix)]  # sorted n-gram keys per order
    raw = [None, np.bincount(stream, minlength=radix)]  # raw counts per order
    suffix = [None, None]  # per order k >= 2: (n_k,) id of the (k-1)-gram suffix
    gram = stream  # (T,) id of the (k-1)-gram ending at each position, -1 if none
    for _ in range(2, order + 1):
        ends = np.flatnonzero((gram[:-1] >= 0) & (stream[1:] != bos)) + 1  # (m,) k-gram ends
        level_keys, counts, inverse, one_end = _group(gram[ends - 1] * radix + stream[ends])
        keys.append(level_keys)
        raw.append(counts)
        suffix.append(gram[ends[one_end]])  # the (k-1)-gram ending where the k-gram ends
        gram = np.full(stream.size, -1, dtype=np.int64)
        gram[ends] = inverse
    del gram

    starts_bos = [None, np.arange(radix) == bos]
    for k in range(2, order + 1):
        starts_bos.append(starts_bos[k - 1][keys[k] // radix])
    # Adjusted counts: raw at the top order and for n-grams starting with BOS; otherwise
    # N1+(. g), the number of distinct ids seen before g = of (k+1)-grams with suffix g.
    adjusted = [None] * (order + 1)
    adjusted[order] = raw[order]
    for k in range(order - 1, 0, -1):
        left = np.bincount(suffix[k + 1], minlength=keys[k].size)
        adjusted[k] = np.where(starts_bos[k], raw[k], left)
    adjusted[1][bos] = 0  # BOS is never predicted
    del raw
    if not sentence_mode:  # drop the n-grams starting with BOS: they sort last in each order
        for k in range(2, order + 1):
            keep = keys[k].size - int(starts_bos[k].sum())
            keys[k], adjusted[k], suffix[k] = keys[k][:keep], adjusted[k][:keep], suffix[k][:keep]
    del starts_bos

    discounts, fallback_orders = {}, []
    for k in range(1, order + 1):
        discounts[k], fell_back = _discounts(adjusted[k])
        if fell_back:
            fallback_orders.append(k)

    # Interpolate, low order first: p(x|h) = (a - D(a)) / denom(h) + gamma(h) p(x|h').
    a1 = adjusted[1][:vocab_size].astype(np.float64)  # (V,)
    d1 = np.array((0.0, *discounts[1]))[np.minimum(adjusted[1][:vocab_size], 3)]  # (V,)
    total = a1.sum()
    gamma0 = d1.sum() / total if total > 0 else 1.0
    lower_prob = (a1 - d1) / max(total, 1.0) + gamma0 / vocab_size  # (V,) p(x)
    unigram = OrderTable(np.arange(0), np.append(np.log(lower_prob), 0.0), np.zeros(radix))
    levels: list[OrderTable] = []
    for k in range(2, order + 1):  # in place where it can be: these arrays are the largest
        prefix = keys[k] // radix  # (n_k,)
        d = np.array((0.0, *discounts[k]))[np.minimum(adjusted[k], 3)]  # (n_k,) D(a)
        a = adjusted[k].astype(np.float64)  # (n_k,)
        n_contexts = keys[k - 1].size if k > 2 else radix
        denom = np.bincount(prefix, weights=a, minlength=n_contexts)  # (n_{k-1},)
        gamma = np.ones(n_contexts)  # contexts never continued pass all mass down
        seen = denom > 0
        gamma[seen] = np.bincount(prefix, weights=d, minlength=n_contexts)[seen] / denom[seen]
        prob = lower_prob[suffix[k]]  # (n_k,) p(x | h'), becoming p(x | h)
        prob *= gamma[prefix]
        a -= d
        a /= denom[prefix]
        prob += a
        del a, d, prefix, denom
        adjusted[k] = suffix[k] = None
        (unigram if k == 2 else levels[-1]).logbackoff = np.log(gamma)
        levels.append(OrderTable(keys[k], np.log(prob), np.zeros(0)))
        lower_prob = prob

    stats = NGramStats(
        order=order,
        vocab_size=vocab_size,
        ngram_counts={1: vocab_size + int(sentence_mode)}
        | {k: keys[k].size for k in range(2, order + 1)},
        discounts=discounts,
        fallback_orders=fallback_orders,
        build_seconds=time.perf_counter() - start,
        train_tokens=int(np.count_nonzero(stream != bos)),
        sentence_mode=sentence_mode,
    )
    return stats, unigram, levels


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys (sorted), their counts, each key's group, and one position of each group.

    np.unique(..., return_index=True) does this with a stable sort; any occurrence serves us,
    so the faster default sort does.
    """
    sort = np.argsort(keys)  # (m,)
    sorted_keys = keys[sort]
    is_first = np.ones(keys.size, dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=is_first[1:])
    starts = np.flatnonzero(is_first)  # (n,)
    inverse = np.empty(keys.size, dtype=np.int64)
    inverse[sort] = np.cumsum(is_first) - 1
    return sorted_keys[starts], np.diff(np.append(starts, keys.size)), inverse, sort[starts]


def _discounts(adjusted: np.ndarray) -> tuple[tuple[float, float, float], bool]:
    """(D1, D2, D3+) from counts-of-counts of adjusted counts, and whether it fell back.

    Chen & Goodman's estimate, as KenLM: it falls back to FALLBACK_DISCOUNTS when n1, n2 or n3
    is 0 or a D_j leaves (0, j]. (KenLM accepts D_j = 0; we do not, because it can leave a
    context with gamma = 0 and so give some token probability 0.)
    """
    n = np.bincount(adjusted[(adjusted >= 1) & (adjusted <= 4)], minlength=5).astype(np.float64)
    if n[1] > 0 and n[2] > 0 and n[3] > 0:
        y = n[1] / (n[1] + 2 * n[2])
        d = tuple(float(j - (j + 1) * y * n[j + 1] / n[j]) for j in (1, 2, 3))
        if all(0 < d[j - 1] <= j for j in (1, 2, 3)):
            return d, False
    return FALLBACK_DISCOUNTS, True
