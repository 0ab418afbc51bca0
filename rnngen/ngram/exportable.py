"""A fitted KneserNey's tables as an ARPA file lists them, for export: `Exportable` is a base of
kneser_ney.py's KneserNey (whose unigram table, levels, radix and stats it reads), as the
ARPA writer (kenlm.py, arpa.py) and the tests read them.

A k-gram's key is prefix_id * radix + last_token (kneser_ney.py's Representation), so its
prefix and last token are the key's quotient and remainder: `ngram_table` computes whole
columns, `ngram_columns` only the rows asked for (`_KeyPart`), for models of any size.
"""

from __future__ import annotations

import numpy as np


class Exportable:
    """Order k's n-grams with their log-probabilities and backoffs (a base of KneserNey)."""

    def ngram_table(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Order k's n-grams as an ARPA file lists them, for export: (prefix, last, lnp, lnbo).

        prefix indexes order k-1's table (for k = 2 it is a token id; for k = 1, -1) and last is
        the final token id, so n-gram i of order k is the prefix's n-gram followed by last[i].
        lnp is ln p(last | prefix), interpolated; lnbo is ln gamma of the n-gram as a context,
        0 where it is never one. Unigrams cover every id < vocab_size, plus BOS (lnp -inf) in
        sentence mode. All arrays have shape (n_k,).
        """
        if k == 1:
            n = self.vocab_size + int(self.stats.sentence_mode)
            logprob = self._unigram.logprob[:n].copy()
            logprob[self.vocab_size :] = -np.inf  # <s> is never predicted
            return np.full(n, -1), np.arange(n), logprob, self._unigram.logbackoff[:n]
        level = self._levels[k - 2]
        top = level.logbackoff.size == 0
        return (
            level.keys // self._radix,
            level.keys % self._radix,
            level.logprob,
            np.zeros(level.keys.size) if top else level.logbackoff,
        )

    def ngram_columns(self, k: int) -> tuple:
        """ngram_table(k) without computing whole columns: prefix and last are views that
        divide the keys only of the rows asked for, and the top order's lnbo is None (it has
        none). What the ARPA writer reads, a chunk of rows at a time, for models of any size.
        """
        if k == 1:
            return self.ngram_table(1)
        level = self._levels[k - 2]
        top = k == self.order
        return (
            _KeyPart(level.keys, self._radix, last=False),
            _KeyPart(level.keys, self._radix, last=True),
            level.logprob,
            None if top else level.logbackoff,
        )


class _KeyPart:
    """keys // radix (prefix) or keys % radix (last) of any rows, computed when asked for."""

    def __init__(self, keys: np.ndarray, radix: int, *, last: bool):
        self.keys, self.radix, self.last = keys, radix, last
        self.size = keys.size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, rows):
        keys = self.keys[rows]
        return keys % self.radix if self.last else keys // self.radix
