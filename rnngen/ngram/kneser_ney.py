"""Interpolated modified Kneser-Ney n-gram model over integer token ids, as KenLM computes it.

This is the baseline rnngen compares its RNNs with. It estimates exactly what KenLM's `lmplz`
does (shared/reference/kenlm-semantics.md), so its numbers can be checked against a standard
tool, but over token-id streams, with numpy only (no torch) and vectorized throughout.

Modes
-----
* stream (`KneserNey.fit`): the ids are one long stream; context crosses line ends; there is no
  <s> or </s>. `logprobs(ids)` scores ids[1:] given up to order-1 preceding ids of the same
  array: exactly the targets an RNN predicts with x = ids[:-1], y = ids[1:].
* sentence (`rnngen.ngram.kenlm.fit_sentences`): KenLM's whitespace-word sentences, used to
  verify this module against KenLM's own numbers. `rnngen.ngram.kenlm` also writes ARPA files.

Both share one estimator, `rnngen.ngram.estimate` (counts, adjusted counts, discounts,
interpolation); this module looks its results up, scores, samples, saves and loads (the file's
tables: `rnngen.ngram.model_file`). A stream may contain the sentence-start marker BOS, whose
id is `vocab_size` (one past the last predictable id): it is context only, never predicted.
Stream mode puts one BOS before the training stream, so an n-gram at the very start counts
one distinct left context (as a sentence's first word does after <s> in KenLM), then drops the
n-grams that start with BOS: stream scoring never asks for them.

Representation
--------------
The n-grams of order k have ids 0..n_k-1 in lexicographic order. A k-gram (k >= 2) is stored as
one int64 key, prefix_id * radix + last_token, with prefix_id the id of its (k-1)-gram prefix and
radix = vocab_size + 1 (unigram ids are the token ids themselves). The key fits in 64 bits for
any order, since n_{k-1} <= number of training tokens; sorted keys are sorted n-grams, all
continuations of one context are one contiguous slice, and a lookup is a `searchsorted`.
Counting is an argsort of the keys built at every position at once; memory is O(tokens) while
building and O(distinct n-grams) after.

Stored per order, as an ARPA file would hold them: ln p(last | prefix), interpolated, for every
n-gram; and ln gamma(n-gram as a context), 0 where it never is one. Scoring finds the longest
known n-gram at each position and adds the backoffs of the longer contexts, which equals the
interpolated formula because an unseen n-gram's probability is gamma(h) p(x | h').

API
---
    KneserNey.fit(train_ids, order, vocab_size) -> KneserNey        # stream mode
    model.logprobs(ids) -> (len(ids)-1,) float64, ln p of ids[1:]
    model.distribution(context) -> (vocab_size,) float64, sums to 1
    model.save(path); KneserNey.load(path)                           # safetensors, atomic
    model.stats: NGramStats       # sizes, discounts, fallback_orders, build_seconds, ...
    model.ngram_table(k)          # order k's n-grams and log-probabilities, for export
    model.ngram_columns(k)        # the same, computed a chunk of rows at a time (exportable.py)
    model.order, model.vocab_size, model.bos
"""

from __future__ import annotations

import os

import numpy as np

from rnngen.errors import RnngenError
from rnngen.ngram.budget import check_memory, default_memory
from rnngen.ngram.counting import TokenStream
from rnngen.ngram.estimate import NGramStats, estimate
from rnngen.ngram.exportable import Exportable
from rnngen.ngram.external import Plan, Scratch
from rnngen.ngram.interpolation import Level, OrderTable
from rnngen.ngram.model_file import FORMAT, read_tables, write_tables

__all__ = ["FORMAT", "MAX_ORDER", "KneserNey", "NGramStats"]

MAX_ORDER = 9
# The `format` metadata of saved models. /2: tensors 8-byte aligned and memory-mapped on load
# (the same tensors as /1, which is refused, so that a cache of it is rebuilt).


class KneserNey(Exportable):
    """A fitted model; build it with `fit` (or `ngram_kenlm.fit_sentences`) or `load`."""

    def __init__(self, stats: NGramStats, unigram: OrderTable, levels: list[OrderTable]):
        self.stats = stats
        self.order = stats.order
        self.vocab_size = stats.vocab_size
        self.bos = stats.vocab_size  # context-only sentence start (sentence mode)
        self._radix = stats.vocab_size + 1
        self._unigram = unigram  # dense, indexed by id 0..vocab_size; BOS logprob 0, never asked
        self._levels = levels  # orders 2..order
        # ids a caller may pass: BOS only where a model has sentence starts
        self._id_limit = self._radix if stats.sentence_mode else stats.vocab_size
        self._unigram_prob = np.exp(unigram.logprob[: self.vocab_size])  # (V,) p(x)

    @classmethod
    def fit(
        cls,
        train_ids: np.ndarray,
        order: int,
        vocab_size: int,
        *,
        memory: int | Plan | None = None,
        scratch_dir: str | os.PathLike | None = None,
        path: str | os.PathLike | None = None,
        path_optional: bool = False,
    ) -> KneserNey:
        """Estimate from one token stream (stream mode); ids must lie in [0, vocab_size).

        train_ids may be memory-mapped: it is read a chunk at a time. memory: the estimator's
        budget in bytes (default: budget.default_memory()); beyond it, intermediate arrays
        spill to a scratch directory inside scratch_dir (default: the system's temporary
        directory), removed when the build ends however it ends. path: also write the model
        there (atomically) and return it memory-mapped from that file; with path_optional (a
        cache), a path that cannot be written is passed over rather than an error. The model
        is the same whatever the budget.
        """
        _check_order(order)
        if vocab_size < 1:
            raise RnngenError(f"n-gram vocabulary size must be at least 1, not {vocab_size}")
        ids = np.asarray(train_ids)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise RnngenError("training ids must be a 1-D array of integer token ids")
        stream = TokenStream(ids, vocab_size, vocab_size, leading_bos=True, what="training ids")
        return cls._estimate(
            stream, order, vocab_size, False, memory, scratch_dir, path, path_optional
        )

    @classmethod
    def _estimate(
        cls, stream, order, vocab_size, sentence_mode, memory, scratch_dir, path, optional=False
    ):
        """Run the estimator in a scratch directory and make the model (see fit)."""
        if isinstance(memory, Plan):
            plan = memory
        else:
            budget = default_memory()[0] if memory is None else memory
            plan = Plan.for_budget(check_memory(budget, vocab_size, "n-gram memory budget"))
        with Scratch(plan, scratch_dir) as scratch:
            stats, unigram, levels = estimate(
                stream, order, vocab_size, sentence_mode=sentence_mode, scratch=scratch
            )
            if path is not None:
                try:
                    write_tables(path, stats, unigram, levels)
                    return cls.load(path)
                except RnngenError:
                    if not optional:
                        raise
            if scratch.spilled:
                # Too big to gather in memory: map it from a file that the scratch directory's
                # removal unlinks (the mapping keeps its pages until the model goes).
                path = scratch.new_file("model")
                write_tables(path, stats, unigram, levels)
                return cls.load(path)
            return cls(stats, unigram, [level.take() for level in levels])

    def logprobs(self, ids: np.ndarray) -> np.ndarray:
        """ln p(ids[t] | up to order-1 preceding ids) for t >= 1, shape (len(ids)-1,).

        A BOS in ids (sentence mode) is context only: its position scores 0.0 (given, not
        predicted), so the sum over a stream of sentences is their total log-probability.
        """
        ids = _as_ids(ids, self._id_limit, "ids")
        if ids.size < 2:
            return np.zeros(0)
        targets = ids[1:]  # (T-1,)
        logp = self._unigram.logprob[targets]  # (T-1,) best so far: the longest known n-gram
        backoff = np.zeros(targets.size)  # (T-1,) sum of ln gamma of contexts longer than it
        gram = ids  # (T,) id of the (k-1)-gram ending at each position, -1 if unknown
        for k, level in enumerate(self._levels, start=2):
            if level.keys.size == 0:
                break  # no k-gram known: no context of length k-1 has a continuation
            context = gram[:-1]  # (T-1,) the (k-1)-gram ending just before each target
            lower = self._unigram if k == 2 else self._levels[k - 3]
            context_bo = np.where(context >= 0, lower.logbackoff[np.maximum(context, 0)], 0.0)
            found = self._lookup(level, context, targets)  # (T-1,)
            known = found >= 0
            logp = np.where(known, level.logprob[np.maximum(found, 0)], logp)
            backoff = np.where(known, 0.0, backoff + context_bo)
            gram = np.concatenate(([-1], found))
        result = logp + backoff
        result[targets == self.bos] = 0.0
        return result

    def context_orders(self, ids: np.ndarray) -> np.ndarray:
        """For each target ids[t], t >= 1: 1 + the length of the longest suffix of its
        context (up to order-1 ids) that the model knows as a context, shape (len(ids)-1,).

        It depends on the context only, never on the target, so a mixture weight chosen by it
        keeps the mixture normalized. 1 means the n-gram has only its unigram to offer.
        """
        ids = _as_ids(ids, self._id_limit, "ids")
        orders = np.ones(max(ids.size - 1, 0), dtype=np.int64)
        if ids.size < 2:
            return orders
        gram = ids  # (T,) id of the (k-1)-gram ending at each position, -1 if unknown
        for k, level in enumerate(self._levels, start=2):
            if level.keys.size == 0:
                break
            context = gram[:-1]  # (T-1,) the (k-1)-gram ending just before each target
            orders = np.where((context >= 0) & (orders == k - 1), k, orders)
            gram = np.concatenate(([-1], self._lookup(level, context, ids[1:])))
        return orders

    def distribution(self, context: np.ndarray) -> np.ndarray:
        """p(x | context) for every x < vocab_size, shape (vocab_size,); used for sampling.

        Only the last order-1 ids of context matter. Each known suffix h of the context, from
        short to long, scales the lower-order distribution by gamma(h) and overwrites the
        continuations seen after h with their stored interpolated probabilities.
        """
        context = _as_ids(context, self._id_limit, "context")
        context = context[max(context.size - self.order + 1, 0) :]  # (c,) c <= order-1
        probs = self._unigram_prob.copy()  # (V,)
        if self.order == 1 or context.size == 0:
            return probs
        gram = context  # (c,) id of the j-gram ending at each position of context
        for j in range(1, context.size + 1):
            if j > 1:
                gram = np.concatenate(
                    ([-1], self._lookup(self._levels[j - 2], gram[:-1], context[1:]))
                )
            suffix_id = int(gram[-1])  # id of context[-j:]
            level = self._levels[j - 1]
            if suffix_id < 0:
                continue  # unseen context: passes all its mass down
            lo, hi = np.searchsorted(
                level.keys, [suffix_id * self._radix, (suffix_id + 1) * self._radix]
            )
            if lo == hi:
                continue
            lower = self._unigram if j == 1 else self._levels[j - 2]
            probs *= np.exp(lower.logbackoff[suffix_id])
            probs[level.keys[lo:hi] % self._radix] = np.exp(level.logprob[lo:hi])
        return probs

    def _lookup(self, level: OrderTable, prefix: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Ids of the n-grams (prefix id, token) in level, -1 where absent; shapes (m,)."""
        if level.keys.size == 0:
            return np.full(prefix.size, -1, dtype=np.int64)
        query = prefix * self._radix + tokens  # (m,) garbage where prefix < 0, masked below
        pos = np.minimum(np.searchsorted(level.keys, query), level.keys.size - 1)
        return np.where((prefix >= 0) & (level.keys[pos] == query), pos, -1)

    def save(self, path: str | os.PathLike) -> None:
        """Write one safetensors file (never pickle) via a temporary file and os.replace."""
        levels = [Level(level.keys, level.logprob, level.logbackoff) for level in self._levels]
        write_tables(path, self.stats, self._unigram, levels)

    @classmethod
    def load(cls, path: str | os.PathLike) -> KneserNey:
        """Read a file written by `save`, memory-mapped (read-only arrays over the file);
        a missing, foreign, damaged or older-format file is an RnngenError."""
        return cls(*read_tables(path))


def _check_order(order: int) -> None:
    if not isinstance(order, (int, np.integer)) or not 1 <= order <= MAX_ORDER:
        raise RnngenError(f"n-gram order must be between 1 and {MAX_ORDER}, not {order}")


def _as_ids(ids: np.ndarray, limit: int, what: str) -> np.ndarray:
    """ids as a 1-D int64 array, checked to lie in [0, limit)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise RnngenError(f"{what} must be a 1-D array of integer token ids")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
        raise RnngenError(f"{what} must lie in [0, {limit}); found {ids.min()}..{ids.max()}")
    return ids
