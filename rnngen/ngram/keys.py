"""N-gram keys: token tuples packed into 64-bit words that sort as the tuples do.

An n-gram of order k over ids in [0, radix) is the number sum_i w_i radix^(k-1-i), kept as the
rows of a (n, W) uint64 array, most significant word first. Each word holds up to L tokens, L
the most for which radix^L <= 2^64: the last word the last L tokens, the word before it the L
before those, the first word what is left. Rows compared word by word are n-grams compared
token by token, so sorted rows are n-grams in lexicographic order. W = 1 whenever radix^k fits
in 64 bits (rnngen's default tokenizers at orders up to 6), and then everything here is one
numpy call on a plain uint64 column (np.sort with its SIMD kernels, searchsorted); wider keys
(large vocabularies, high orders) take a least-significant-word-first stable sort and a merge
in place of searchsorted: correct for any order and vocabulary, slower.

API (keys are (n, W) uint64 arrays; `Codec(radix, k)` describes order k)
---
    codec.windows(tokens, count) -> keys of tokens[i : i + k] for i < count
    codec.prefix(keys, lower) / codec.suffix(keys, lower) -> keys of the first / last k-1 ids
    codec.first(keys), codec.last(keys) -> (n,) the first / last token id
    sort_rows(keys) -> sorted keys;  order_rows(keys) -> the stable permutation that sorts them
    group_starts(sorted) -> (g,) where each run of equal rows begins
    search(table, queries) -> (m,) index of each query's row in the sorted, distinct table
    count_at_most(sorted, row) -> how many rows are <= row
"""

from __future__ import annotations

import numpy as np

U64 = np.uint64


class Codec:
    """The layout of order `order`'s keys over ids in [0, radix)."""

    def __init__(self, radix: int, order: int):
        if radix < 2:
            raise ValueError("radix must be at least 2")
        self.radix, self.order = radix, order
        per_word = 1
        while radix ** (per_word + 1) <= 2**64:
            per_word += 1
        self.per_word = per_word
        self.words = -(-order // per_word)  # W
        # digits[w]: tokens held by word w (the first word may hold fewer)
        self.digits = [per_word] * self.words
        self.digits[0] = order - per_word * (self.words - 1)

    @property
    def narrow(self) -> bool:
        return self.words == 1

    def windows(self, tokens: np.ndarray, count: int) -> np.ndarray:
        """Keys of the windows tokens[i : i + order] for i in range(count), shape (count, W).

        tokens: uint64 ids, at least count + order - 1 of them. Each word is built in place by
        multiply-add over shifted slices, so no (count, order) matrix is ever made.
        """
        keys = np.empty((count, self.words), dtype=U64)
        position = 0
        for w, digits in enumerate(self.digits):
            word = keys[:, w] if self.narrow else np.empty(count, dtype=U64)
            word[...] = tokens[position : position + count]
            for j in range(1, digits):
                np.multiply(word, U64(self.radix), out=word)
                np.add(word, tokens[position + j : position + j + count], out=word)
            if not self.narrow:
                keys[:, w] = word
            position += digits
        return keys

    def tokens(self, keys: np.ndarray) -> np.ndarray:
        """The ids of each key, first token first, shape (n, order), uint64."""
        out = np.empty((keys.shape[0], self.order), dtype=U64)
        column = self.order
        radix = U64(self.radix)
        for w in range(self.words - 1, -1, -1):
            word = keys[:, w].copy()
            for _ in range(self.digits[w]):
                column -= 1
                out[:, column] = word % radix
                word //= radix
        return out

    def pack(self, tokens: np.ndarray) -> np.ndarray:
        """Keys of an (n, order) id matrix (the inverse of `tokens`)."""
        keys = np.empty((tokens.shape[0], self.words), dtype=U64)
        column = 0
        radix = U64(self.radix)
        for w, digits in enumerate(self.digits):
            word = tokens[:, column].astype(U64)
            for j in range(1, digits):
                word *= radix
                word += tokens[:, column + j].astype(U64)
            keys[:, w] = word
            column += digits
        return keys

    def prefix(self, keys: np.ndarray, lower: Codec) -> np.ndarray:
        """Keys (of order order-1, in lower's layout) of each n-gram without its last id."""
        if self.narrow:
            return (keys[:, 0] // U64(self.radix)).reshape(-1, 1)
        return lower.pack(self.tokens(keys)[:, :-1])

    def suffix(self, keys: np.ndarray, lower: Codec) -> np.ndarray:
        """Keys (of order order-1, in lower's layout) of each n-gram without its first id."""
        if self.narrow:
            return (keys[:, 0] % U64(self.radix ** (self.order - 1))).reshape(-1, 1)
        return lower.pack(self.tokens(keys)[:, 1:])

    def last(self, keys: np.ndarray) -> np.ndarray:
        return keys[:, -1] % U64(self.radix)

    def split(self, keys: np.ndarray, lower: Codec) -> tuple[np.ndarray, np.ndarray]:
        """(prefix keys, last ids) of each n-gram: one division for narrow keys."""
        if self.narrow:
            prefix = keys[:, 0] // U64(self.radix)
            last = keys[:, 0] - prefix * U64(self.radix)
            return prefix.reshape(-1, 1), last
        return self.prefix(keys, lower), self.last(keys)

    def first(self, keys: np.ndarray) -> np.ndarray:
        return keys[:, 0] // U64(self.radix ** (self.digits[0] - 1))

    def first_at_least(self, keys: np.ndarray, token: int) -> np.ndarray:
        """(n,) bool: does the n-gram start with an id >= token (as BOS, the largest id)."""
        return keys[:, 0] >= U64(token * self.radix ** (self.digits[0] - 1))


def sort_rows(keys: np.ndarray) -> np.ndarray:
    """The rows of keys in lexicographic order (a new array)."""
    if keys.shape[1] == 1:
        return np.sort(keys[:, 0]).reshape(-1, 1)
    return keys[order_rows(keys)]


def order_rows(keys: np.ndarray, *, runs: bool = False) -> np.ndarray:
    """The stable permutation that sorts the rows of keys.

    Word by word from the least significant, each a stable sort: Timsort, which merges the
    sorted runs of a concatenation in one pass, or radix sort for words that fit 16 bits.
    """
    n, words = keys.shape
    if words == 1:
        return np.argsort(keys[:, 0], kind="stable" if runs else None)
    perm = np.argsort(keys[:, -1], kind="stable")
    for w in range(words - 2, -1, -1):
        column = keys[perm, w]
        if n and int(column.max()) < 1 << 16:
            column = column.astype(np.uint16)  # numpy radix-sorts 16-bit keys
        perm = perm[np.argsort(column, kind="stable")]
    return perm


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where each run of equal rows of a sorted key array starts, shape (g,)."""
    n = sorted_keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(sorted_keys[1:, 0], sorted_keys[:-1, 0], out=first[1:])
    for w in range(1, sorted_keys.shape[1]):
        first[1:] |= sorted_keys[1:, w] != sorted_keys[:-1, w]
    return np.flatnonzero(first)


def search(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index in a sorted table of distinct rows of the first row >= each query row, (m,).

    numpy's searchsorted, which is fast when the queries come in sorted runs; wide keys are
    compared as big-endian byte strings, whose order is the rows' order.
    """
    if table.shape[1] == 1:
        return np.searchsorted(table[:, 0], queries[:, 0])
    return np.searchsorted(_as_bytes(table), _as_bytes(queries))


def _as_bytes(keys: np.ndarray) -> np.ndarray:
    """(n, W) keys as n byte strings of 8W bytes that compare as the rows do."""
    words = keys.shape[1]
    return np.ascontiguousarray(keys, dtype=">u8").view(f"S{8 * words}").reshape(-1)


def rows_between(keys: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(n,) bool: low <= row <= high, for (W,) keys low and high."""
    if keys.shape[1] == 1:
        return (keys[:, 0] >= low[0]) & (keys[:, 0] <= high[0])
    rows = _as_bytes(keys)
    return (rows >= _as_bytes(low[None, :])[0]) & (rows <= _as_bytes(high[None, :])[0])


def row_less(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether key a < key b (both (W,))."""
    return tuple(a.tolist()) < tuple(b.tolist())


def count_at_most(sorted_keys: np.ndarray, row: np.ndarray) -> int:
    """How many rows of a sorted key array are <= row (an (W,) key)."""
    lo, hi = 0, sorted_keys.shape[0]
    words = sorted_keys.shape[1]
    for w in range(words):
        column = sorted_keys[lo:hi, w]
        left = lo + int(np.searchsorted(column, row[w], side="left"))
        right = lo + int(np.searchsorted(column, row[w], side="right"))
        if w == words - 1:
            return right
        lo, hi = left, right
    return hi


def row_min(rows: list[np.ndarray]) -> np.ndarray:
    """The smallest of some (W,) keys."""
    best = rows[0]
    for row in rows[1:]:
        if row_less(row, best):
            best = row
    return best
