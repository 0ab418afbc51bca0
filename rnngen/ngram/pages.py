"""Memory-mapped arrays: giving their pages back once read.

A page of a memory-mapped file that a process has read counts in its resident set until the
mapping goes, although it is only page cache that the kernel could drop. Reading a 1 GB token
file or model through one mapping therefore shows as 1 GB more peak RSS. `release(array)`
tells the kernel (madvise MADV_DONTNEED) that this process no longer needs the pages under an
array that lives in a shared file mapping: the data stays in the page cache and in the file,
and is read back on the next touch. Private (copy-on-write) mappings are left alone, since
there it would discard changes.
"""

from __future__ import annotations

import contextlib
import mmap

import numpy as np

PAGE = mmap.PAGESIZE


def _shared_mapping(array: np.ndarray) -> mmap.mmap | None:
    """The mmap.mmap an array's memory belongs to, if it is a shared (not private) one."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        if isinstance(base, np.memmap) and getattr(base, "mode", "r") == "c":
            return None  # copy-on-write: MADV_DONTNEED would throw changes away
        base = getattr(base, "base", None)
    return base


def _byte_bounds(array: np.ndarray) -> tuple[int, int]:
    try:
        from numpy.lib.array_utils import byte_bounds  # numpy >= 2.0
    except ImportError:  # pragma: no cover (numpy 1.x)
        byte_bounds = np.byte_bounds
    return byte_bounds(array)


def release(array: np.ndarray) -> None:
    """Drop the pages under `array` from this process if it is file-mapped; else nothing."""
    if not isinstance(array, np.ndarray) or array.size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
        return
    mapping = _shared_mapping(array)
    if mapping is None:
        return
    with contextlib.suppress(ValueError, OSError, BufferError, TypeError):
        origin = np.frombuffer(mapping, dtype=np.uint8).__array_interface__["data"][0]
        low, high = _byte_bounds(array)
        start = (low - origin) // PAGE * PAGE
        end = min(-(-(high - origin) // PAGE) * PAGE, len(mapping))
        if 0 <= start < end:
            mapping.madvise(mmap.MADV_DONTNEED, start, end - start)
