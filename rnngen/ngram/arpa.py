"""ARPA text of an n-gram model, formatted with numpy a chunk of lines at a time.

Formatting ARPA lines one by one in Python costs about 1 µs per n-gram, more than building the
model. Here whole columns are formatted at once. A chunk of lines is laid out as a byte matrix,
one row per line and one fixed-width slot per field (log10 p, each word, the backoff), each
field padded with the byte 0xFF, which UTF-8 never uses; `matrix[matrix != 0xFF]` is then the
text. Numbers come from digit tables (`format_fixed6`), words from a padded matrix of the names,
each slot filled by one fancy index of whole rows. Chunks holding a word longer than LONG_NAME
bytes, which would widen every row, are assembled instead by a gather of byte ranges
(`_gather_lines`). The bytes are exactly those of the per-line writer this replaces: numbers as
Python's f"{x:.6f}", words joined by " ", fields by "\\t".

API
---
    arpa_chunks(names, extra, tables) -> iterator of bytes, the UTF-8 ARPA file in pieces
    format_fixed6(x) -> (chars, lengths), f"{v:.6f}" of every v, right-aligned
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from rnngen.ngram import pages

CHUNK_LINES = 32_768  # lines formatted at a time: bounds the memory (~40 B a line, a few times)
LONG_NAME = 48  # bytes; a chunk with a longer word is gathered, not laid out in slots
_FAST_LIMIT = 1000.0  # |x| below this: x * 1e6 is within 1.2e-7 of exact, 3 integer digits
_TIE_MARGIN = 1e-6  # so rint(x * 1e6) is exact unless the fraction is this close to one half
_TAB, _NEWLINE, PAD = 9, 10, 0xFF  # PAD: never a byte of UTF-8 text
_DIGITS3 = np.array([list(f"{i:03d}".encode()) for i in range(1000)], dtype=np.uint8)
_INTEGER_TEXTS = [f"{-i if neg else i:d}".encode() for neg in (0, 1) for i in range(1000)]
_INTEGER_TEXTS[1000] = b"-0"  # key 1000 + i: negative, i = 0 included (as in "-0.000000")
_INTEGERS = np.array([list(t.rjust(4, b"\xff")) for t in _INTEGER_TEXTS], np.uint8)  # (2000, 4)
_INTEGER_LENGTHS = np.array([len(t) for t in _INTEGER_TEXTS], dtype=np.int64)  # (2000,)


def _rows(table: np.ndarray) -> np.ndarray:
    """A C-contiguous (n, w) table as n items of w bytes, so that fancy indexing copies rows
    with one memcpy each instead of element by element; shape (n,)."""
    table = np.ascontiguousarray(table)
    return table.view(np.dtype(f"V{table.shape[1] * table.itemsize}")).reshape(-1)


def _slot(matrix: np.ndarray, column: int, width: int) -> np.ndarray:
    """Columns column .. column + width of a C-contiguous (n, w) matrix, as n items; shape (n,).

    Assigning _rows(...)[index] to it fills the slot of every row at once.
    """
    return np.ndarray(
        buffer=matrix,
        dtype=np.dtype(f"V{width * matrix.itemsize}"),
        shape=(matrix.shape[0],),
        offset=column * matrix.itemsize,
        strides=(matrix.strides[0],),
    )


def format_fixed6(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f"{v:.6f}" for every v in x, right-aligned; why: Python formats one value at a time.

    Returns chars, a uint8 matrix of shape (n, width) whose row i is v's text preceded by PAD
    bytes, and lengths (n,) of the texts. See _Numbers for how.
    """
    numbers = _Numbers(x)
    chars = np.empty((numbers.lengths.size, numbers.width), dtype=np.uint8)
    numbers.write(chars, 0)
    return chars, numbers.lengths


class _Numbers:
    """Values to be written as f"{v:.6f}", split into table keys; written by write().

    The rounding is Python's: correctly rounded, ties to even, the sign kept on -0.0 and on
    negatives that round to zero. rint(x * 1e6) gives it wherever the product's rounding error
    cannot matter; values near a tie, of 1000 or more in magnitude or not finite (a few in a
    million log-probabilities) are formatted by Python. width: bytes of the longest text.
    """

    def __init__(self, x: np.ndarray):
        x = np.asarray(x, dtype=np.float64).ravel()  # (n,)
        with np.errstate(over="ignore", invalid="ignore"):  # inf and nan: formatted by Python
            scaled = x * 1e6
            q = np.rint(scaled)
            slow = ~(np.abs(x) < _FAST_LIMIT) | (0.5 - np.abs(scaled - q) < _TIE_MARGIN)
        self.slow_rows = np.flatnonzero(slow)
        self.slow_text = [f"{v:.6f}".encode() for v in x[self.slow_rows].tolist()]
        self.width = max([11, *map(len, self.slow_text)])  # 11: "-999.999999"
        # Float arithmetic on integers below 2**53 is exact, and faster than int64 divmod.
        magnitude = np.where(slow, 0.0, np.abs(q))  # (n,) |x| in millionths, < 1e9
        whole = np.floor(magnitude / 1e6)
        frac = magnitude - whole * 1e6
        high = np.floor(frac / 1000)
        self.low = (frac - high * 1000).astype(np.intp)  # rows of _DIGITS3
        self.high = high.astype(np.intp)
        self.key = (whole + 1000 * np.signbit(x)).astype(np.intp)  # rows of _INTEGERS
        self.lengths = _INTEGER_LENGTHS[self.key] + 7  # (n,)
        self.lengths[self.slow_rows] = [len(text) for text in self.slow_text]

    def write(self, matrix: np.ndarray, column: int) -> None:
        """Fill columns column .. column + width of a uint8 matrix (n, w), right-aligned."""
        if matrix.shape[0] == 0:
            return
        end = column + self.width
        matrix[:, column : end - 11] = PAD
        _slot(matrix, end - 11, 4)[...] = _rows(_INTEGERS)[self.key]
        matrix[:, end - 7] = ord(".")
        _slot(matrix, end - 6, 3)[...] = _rows(_DIGITS3)[self.high]
        _slot(matrix, end - 3, 3)[...] = _rows(_DIGITS3)[self.low]
        if self.slow_text:
            padded = b"".join(text.rjust(self.width, b"\xff") for text in self.slow_text)
            slow = np.frombuffer(padded, dtype=np.uint8).reshape(-1, self.width)
            matrix[self.slow_rows, column:end] = slow


class _Names:
    """Every word's UTF-8 bytes followed by a space, both as one buffer and as padded rows.

    buf[start[i] : start[i] + length[i] + 1] is name i and its space; spaced[i] holds the same
    in `width` bytes, PAD after, and bare[i] the name alone, for names of at most LONG_NAME bytes.
    """

    def __init__(self, names: list[str]):
        encoded = [name.encode() for name in names]
        self.length = np.array([len(e) for e in encoded], dtype=np.int64)  # (V,)
        self.start = np.cumsum(self.length + 1) - (self.length + 1)  # (V,)
        self.long = self.length > LONG_NAME  # (V,)
        self.width = int(np.minimum(self.length, LONG_NAME).max(initial=0)) + 1
        self.buf = np.frombuffer(
            b"".join(e + b" " for e in encoded) + bytes(self.width), dtype=np.uint8
        )
        column = np.arange(self.width)
        spaced = self.buf[np.minimum(self.start[:, None] + column, self.buf.size - 1)]  # (V, w)
        spaced[column > self.length[:, None]] = PAD
        bare = spaced.copy()
        bare[column == self.length[:, None]] = PAD
        self.spaced, self.bare = _rows(spaced), _rows(bare)  # (V,) items of `width` bytes


def arpa_chunks(names: list[str], extra: list[str], tables: list[tuple]) -> Iterator[bytes]:
    """The ARPA file, UTF-8, in pieces that each end a line: header, then one section per order.

    names[i] is the text of word id i; extra are markers listed as unigrams with log10 p = -99;
    tables[k - 1] is order k's (prefix, last, lnp, lnbo), as KneserNey.ngram_table returns it
    (or ngram_columns: indexable columns, lnbo None at the top order). The pages of memory-mapped
    columns are given back as each chunk is written, so a model of any size streams through.
    """
    head = ["\\data\\\n"]
    for k, (_, last, _, _) in enumerate(tables, start=1):
        head.append(f"ngram {k}={last.size + (len(extra) if k == 1 else 0)}\n")
    yield "".join(head).encode()
    words = _Names(names)
    for k, (_, last, _, _) in enumerate(tables, start=1):
        yield f"\n\\{k}-grams:\n".encode()
        for lo in range(0, last.size, CHUNK_LINES):
            yield _chunk(words, tables, k, lo)
            _release(tables[k - 1], slice(lo, lo + CHUNK_LINES))
        if k == 1:
            yield "".join(f"-99\t{marker}\n" for marker in extra).encode()
    yield b"\n\\end\\\n"


def _release(table: tuple, rows: slice) -> None:
    for column in table:
        column = getattr(column, "keys", column)  # ngram_columns' prefix and last
        if isinstance(column, np.ndarray):
            pages.release(column[rows])


def _chunk(words: _Names, tables: list[tuple], k: int, lo: int) -> bytes:
    """Lines lo .. lo + CHUNK_LINES of order k's section."""
    _, last, lnp, lnbo = tables[k - 1]
    rows = slice(lo, lo + CHUNK_LINES)
    ids = _word_ids(tables, k, rows)  # (n, k)
    log10p = np.where(np.isfinite(lnp[rows]), lnp[rows] / math.log(10), -99.0)
    lines = _gather_lines if words.long[ids].any() else _slot_lines
    return lines(words, ids, log10p, lnbo[rows] if k < len(tables) else None)


def _word_ids(tables: list[tuple], k: int, rows: slice | np.ndarray) -> np.ndarray:
    """The word ids of order k's n-grams `rows` (a slice, then the prefixes' indices), first
    word first; shape (n, k).

    An n-gram is its prefix (an n-gram of order k - 1, a word id at k = 2) and a last word, so
    following prefixes down the orders spells it out.
    """
    ids = np.empty((tables[k - 1][1][rows].size, k), dtype=np.int64)
    for m in range(k, 1, -1):
        prefix, last = tables[m - 1][:2]
        ids[:, m - 1] = last[rows]
        rows = prefix[rows]
    ids[:, 0] = tables[0][1][rows]
    return ids


def _fields(log10p: np.ndarray, lnbo: np.ndarray | None) -> tuple:
    """For _gather_lines, the numbers of n lines: log10 p and the log10 backoff as
    format_fixed6 lays them out, and whether each line lists a backoff (lnbo != 0; never at the
    top order, lnbo None)."""
    p_chars, p_lengths = format_fixed6(log10p)
    if lnbo is None:
        empty = np.zeros((log10p.size, 0), dtype=np.uint8)
        return p_chars, p_lengths, empty, np.zeros(log10p.size, np.int64), np.zeros(0, bool)
    bo_chars, bo_lengths = format_fixed6(lnbo / math.log(10))
    has_bo = lnbo != 0
    return p_chars, p_lengths, bo_chars, bo_lengths * has_bo, has_bo


def _slot_lines(words: _Names, ids: np.ndarray, log10p: np.ndarray, lnbo) -> bytes:
    """Lines f"{p:.6f}\\t{w1} .. {wk}[\\t{bo:.6f}]\\n" laid out in slots, PAD dropped.

    Row layout: p | tab | word 1 and its space | .. | word k | [tab | backoff] | newline.
    """
    p = _Numbers(log10p)
    bo = None if lnbo is None else _Numbers(lnbo / math.log(10))
    n, k = ids.shape
    wp, wn = p.width, words.width
    width = wp + 1 + k * wn + (0 if bo is None else 1 + bo.width) + 1
    text = np.empty((n, width), dtype=np.uint8)
    p.write(text, 0)
    text[:, wp] = _TAB
    for j in range(k):
        names = words.spaced if j < k - 1 else words.bare  # no space after the last word
        _slot(text, wp + 1 + j * wn, wn)[...] = names[ids[:, j]]
    if bo is not None:
        column = wp + 1 + k * wn
        text[:, column] = _TAB
        bo.write(text, column + 1)
        text[np.flatnonzero(lnbo == 0), column : width - 1] = PAD  # no backoff listed
    text[:, -1] = _NEWLINE
    return np.extract(text != PAD, text).tobytes()  # twice as fast as text[text != PAD]


def _gather_lines(words: _Names, ids: np.ndarray, log10p: np.ndarray, lnbo) -> bytes:
    """The same lines as _slot_lines, as one gather of byte ranges (slower, any word length)."""
    p_chars, p_lengths, bo_chars, bo_lengths, has_bo = _fields(log10p, lnbo)
    n, k = ids.shape
    wp, wb = p_chars.shape[1], bo_chars.shape[1]
    separators = p_chars.size + words.buf.size  # where b"\t\n" lies in the pool
    pool = np.concatenate(
        [p_chars.ravel(), words.buf, np.array([_TAB, _NEWLINE], np.uint8), bo_chars.ravel()]
    )
    row = np.arange(n)
    starts = [(row + 1) * wp - p_lengths, np.full(n, separators)]
    lengths = [p_lengths, np.ones(n, np.int64)]
    for j in range(k):
        starts.append(p_chars.size + words.start[ids[:, j]])
        lengths.append(words.length[ids[:, j]] + (j < k - 1))
    if lnbo is not None:
        starts += [np.full(n, separators), separators + 2 + (row + 1) * wb - bo_lengths]
        lengths += [has_bo.astype(np.int64), bo_lengths]
    starts.append(np.full(n, separators + 1))
    lengths.append(np.ones(n, np.int64))
    starts, lengths = np.stack(starts, axis=1).ravel(), np.stack(lengths, axis=1).ravel()
    offsets = np.cumsum(lengths) - lengths  # (segments,) where each lands in the output
    index = np.repeat(starts - offsets, lengths)
    index += np.arange(index.size)
    return pool[index].tobytes()
