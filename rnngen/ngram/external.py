"""Bounded memory for the estimator: a plan, a scratch directory, spillable columns.

The estimator keeps its intermediate arrays (sorted runs of counted n-grams, then one column
per order of keys, adjusted counts, suffix indices and probabilities) in `Column`s: in memory
while the plan's storage allowance lasts, then in files of a scratch directory, written and
read a block at a time. Values never depend on where a column lives or on block sizes, so a
build that spilled is identical to one that did not.

    Plan          how much of everything: chunk, block and table sizes, storage allowance
    Scratch       the scratch directory: made on first spill, removed on success, error,
                  Ctrl-C and SIGTERM; a full disk is one RnngenError
    Column        an append-only array (rows of a fixed width) in memory or in a file

The sorted runs of counted keys built on columns (merge, RunSet) are runs.py's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.atomic import describe, process_alive
from rnngen.errors import RnngenError

SCRATCH_PREFIX = ".rnngen-ngram-work."


@dataclass(frozen=True)
class Plan:
    """Sizes derived from a memory budget (bytes); `Plan.for_budget` is the usual way in.

    chunk: token positions counted at a time; block: table rows streamed at a time; table:
    rows of a lower order held for random access (more passes when it has more); store: bytes
    of columns and runs kept in memory before they spill to disk; fan_in: runs merged at once.
    """

    budget: int
    chunk: int
    block: int
    table: int
    store: int
    fan_in: int = 16

    @classmethod
    def for_budget(cls, budget: int) -> Plan:
        return cls(
            budget=budget,
            chunk=int(np.clip(budget // 5 // 48, 4096, 1 << 23)),
            block=int(np.clip(budget // 16 // 64, 4096, 1 << 22)),
            table=max(budget // 4 // 24, 4096),
            store=budget // 2,
        )


class Scratch:
    """The estimator's scratch directory and memory accounting; use as a context manager.

    The directory (`.rnngen-ngram-work.PID.RANDOM` inside `parent`) is made only when a
    column first spills. Leaving the context removes it, whatever ended the build; SIGTERM,
    whose default would kill the process where it stands, is turned into an exception for
    the duration (when this is the main thread and nobody else handles SIGTERM), and then
    delivered again once the directory is gone. Directories that killed processes left
    behind are removed on entry.
    """

    def __init__(self, plan: Plan, parent: str | os.PathLike | None = None):
        self.plan = plan
        self.parent = Path(parent) if parent is not None else None
        self.path: Path | None = None
        self.held = 0  # bytes of columns in memory
        self.written = 0  # bytes written to the scratch directory
        self.spilled = False
        self._names = 0
        self._previous_handler = None

    def __enter__(self) -> Scratch:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, TypeError):
                if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                    self._previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.remove()
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            if isinstance(error, _Terminated):
                signal.raise_signal(signal.SIGTERM)  # the default action, now that we are clean

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def new_file(self, stem: str) -> Path:
        if self.path is None:
            parent = self.parent if self.parent is not None else Path(_default_parent())
            try:
                parent.mkdir(parents=True, exist_ok=True)
                remove_stale_scratch(parent)
                path = parent / f"{SCRATCH_PREFIX}{os.getpid()}.{secrets.token_hex(4)}"
                path.mkdir()
            except OSError as e:
                raise RnngenError(
                    f"cannot make the n-gram's scratch directory in {str(parent)!r}: {describe(e)}"
                ) from None
            self.path = path
        self.spilled = True
        self._names += 1
        return self.path / f"{self._names:05d}-{stem}.bin"

    def reserve(self, nbytes: int) -> bool:
        """Account nbytes more held in memory if the allowance has room for them."""
        if self.held + nbytes > self.plan.store:
            return False
        self.held += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.held -= nbytes

    def disk_error(self, error: OSError) -> RnngenError:
        where = str(self.path or self.parent or _default_parent())
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return RnngenError(
                f"no space left on the device for the n-gram's temporary files in {where!r} "
                "(free some space, or give --ngram-memory more so that less goes to disk)"
            )
        return RnngenError(
            f"cannot write the n-gram's temporary files in {where!r}: {describe(error)}"
        )


class _Terminated(KeyboardInterrupt):
    """SIGTERM during a build, raised where the build was so that its files are removed."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _default_parent() -> str:
    import tempfile

    return tempfile.gettempdir()


def remove_stale_scratch(parent: Path) -> None:
    """Remove scratch directories of processes that are gone (killed by SIGKILL, say)."""
    with contextlib.suppress(OSError):
        for candidate in parent.glob(f"{SCRATCH_PREFIX}*"):
            pid = candidate.name[len(SCRATCH_PREFIX) :].split(".")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                shutil.rmtree(candidate, ignore_errors=True)


class Column:
    """An append-only array of rows (shape (n,) or (n, width)) of one dtype.

    In memory while the scratch allowance has room, otherwise in a file (all of it, from the
    first refusal on). read(i, j) returns rows i..j; blocks(...) iterates over them.
    """

    def __init__(self, scratch: Scratch, dtype, width: int | None = None, name: str = "col"):
        self.scratch = scratch
        self.dtype = np.dtype(dtype)
        self.width = width
        self.name = name
        self.rows = 0
        self._pieces: list[np.ndarray] = []
        self._starts: list[int] = []
        self._held = 0
        self._file: Path | None = None
        self._handle = None

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * (self.width or 1)

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def append(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.dtype != self.dtype or not rows.flags.c_contiguous or _part_of_more(rows):
            rows = np.array(rows, dtype=self.dtype, order="C")  # never keep a bigger array alive
        n = rows.shape[0]
        if n == 0:
            return
        if self._file is None and self.scratch.reserve(rows.nbytes):
            self._held += rows.nbytes
            self._pieces.append(rows)
            self._starts.append(self.rows)
        else:
            if self._file is None:
                self._spill()
            self._write(rows)
        self.rows += n

    def _spill(self) -> None:
        self._file = self.scratch.new_file(self.name)
        try:
            self._handle = open(self._file, "wb")  # noqa: SIM115 (closed in finish/free)
        except OSError as e:
            raise self.scratch.disk_error(e) from None
        pieces, self._pieces, self._starts = self._pieces, [], []
        for piece in pieces:
            self._write(piece)
        self.scratch.release(self._held)
        self._held = 0

    def _write(self, rows: np.ndarray) -> None:
        self.scratch.written += rows.nbytes
        try:
            _write_to(self._handle, rows)
        except OSError as e:
            raise self.scratch.disk_error(e) from None

    def _flush(self) -> None:
        if self._handle is not None:
            try:
                self._handle.flush()
            except OSError as e:
                raise self.scratch.disk_error(e) from None

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.rows if stop is None else min(stop, self.rows)
        start = min(start, stop)
        shape = (stop - start,) if self.width is None else (stop - start, self.width)
        if self._file is not None:
            self._flush()
            count = (stop - start) * (self.width or 1)
            with open(self._file, "rb") as f:
                out = np.fromfile(f, self.dtype, count, offset=start * self.row_bytes)
            return out.reshape(shape)
        if not self._pieces or start == stop:
            return np.zeros(shape, dtype=self.dtype)
        i = int(np.searchsorted(self._starts, start, side="right")) - 1
        first = self._pieces[i]
        offset = start - self._starts[i]
        if offset + (stop - start) <= first.shape[0]:
            return first[offset : offset + stop - start]
        parts = []
        while start < stop:
            piece, offset = self._pieces[i], start - self._starts[i]
            take = min(piece.shape[0] - offset, stop - start)
            parts.append(piece[offset : offset + take])
            start += take
            i += 1
        return np.concatenate(parts)

    def blocks(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        stop = self.rows if stop is None else stop
        for i in range(start, stop, size):
            yield self.read(i, min(i + size, stop))

    def free(self) -> None:
        self._pieces, self._starts = [], []
        self.scratch.release(self._held)
        self._held = 0
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.unlink()
            self._file = None
        self.rows = 0


def _write_to(handle, rows: np.ndarray) -> None:
    handle.write(memoryview(rows).cast("B"))


def _part_of_more(array: np.ndarray) -> bool:
    """Whether array is a view of a larger array (which keeping it would keep alive)."""
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    return owner is not array and (owner.base is not None or owner.nbytes > array.nbytes)


def column_of(scratch: Scratch, array: np.ndarray, name: str) -> Column:
    column = Column(scratch, array.dtype, None if array.ndim == 1 else array.shape[1], name)
    column.append(array)
    return column
