"""The estimator's memory budget: parsing `--ngram-memory`, the default, the minimum.

A budget bounds what the estimator itself holds (its chunks, blocks, tables and the columns it
keeps in memory before spilling them to disk), not the interpreter, the tokenizer or the
caller's own arrays. SIZE is bytes with an optional K, M, G or T suffix (powers of 1024, a
trailing B allowed: 512M, 1.5G, 4GB) or a percentage of the machine's physical memory (25%).
"""

from __future__ import annotations

import os
import re

from rnngen.errors import RnngenError

MIB = 1 << 20
DEFAULT_SHARE = 8  # the default budget is 1/8 of physical memory ...
DEFAULT_CAP_OF_AVAILABLE = 2  # ... and at most 1/2 of the memory available when it starts
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def minimum_memory(vocab_size: int) -> int:
    """The smallest budget the estimator works in: its fixed buffers (16 MiB) and its dense
    arrays over the vocabulary (about 64 bytes an id)."""
    return 16 * MIB + 64 * (vocab_size + 1)


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_memory() -> tuple[int, str]:
    """The default budget and how it was chosen, for the log."""
    total = physical_memory()
    if total is None:
        return 1 << 30, "1 GiB (the machine's memory is unknown)"
    budget = total // DEFAULT_SHARE
    why = f"1/{DEFAULT_SHARE} of {format_size(total)} of memory"
    available = available_memory()
    if available is not None and available // DEFAULT_CAP_OF_AVAILABLE < budget:
        budget = available // DEFAULT_CAP_OF_AVAILABLE
        why = f"1/{DEFAULT_CAP_OF_AVAILABLE} of the {format_size(available)} available now"
    return max(budget, 64 * MIB), why


def describe_memory(budget: int | None) -> str:
    """The budget a build gets, in words for the log: "3.0 GiB (1/8 of 23.4 GiB of memory)"."""
    if budget is None:
        size, why = default_memory()
        return f"{format_size(size)} ({why}; --ngram-memory to change)"
    return f"{format_size(budget)} (--ngram-memory)"


def parse_memory(text: str, what: str = "--ngram-memory") -> int:
    """Bytes from SIZE as the module docstring says; a bad value is a one-line RnngenError."""
    value = text.strip().upper()
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)B?", value)
    percent = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", value)
    if percent:
        total = physical_memory()
        share = float(percent.group(1))
        if total is None or not 0 < share <= 100:
            raise RnngenError(f"{what} {text!r}: give a percentage in (0, 100], or a size")
        return int(total * share / 100)
    if not match:
        raise RnngenError(f"{what} {text!r} is not a size: give bytes, 512M, 4G or 25%")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def check_memory(budget: int, vocab_size: int, what: str = "--ngram-memory") -> int:
    """The budget, or the one-line error naming the minimum when it is too small."""
    least = minimum_memory(vocab_size)
    if budget < least:
        raise RnngenError(
            f"{what} {format_size(budget)} is too small for the n-gram estimator: "
            f"it needs at least {format_size(least)}"
            + (f" (for a vocabulary of {vocab_size})" if vocab_size else "")
        )
    return budget


def format_size(nbytes: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} B"
