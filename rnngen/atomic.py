"""One way to write a file: all of it, or none of it (stdlib only, no torch).

Every file rnngen writes (checkpoints, resume state, n-gram caches, ARPA files, corpora,
tokenized splits) goes through `atomic_writer`: the bytes go to a hidden temporary file in the
target's own directory (so `os.replace` is a rename, never a copy across file systems), are
flushed and fsynced, and only then replace the target. A reader sees the old file or the new
one, never half of one; a full disk, a read-only directory or a kill leaves the old file as it
was. An OSError becomes an RnngenError naming the path, so the CLI prints one line.

Temporary names carry the writer's pid (`.NAME.PID.RANDOM.tmp`), so that a later run can tell
the leftovers of a killed process (`remove_stale_temporaries`) from a live writer's file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rnngen.errors import RnngenError

TMP_SUFFIX = ".tmp"


def describe(error: OSError) -> str:
    """The reason in an OSError, without Python's '[Errno 28]' decoration."""
    return error.strerror or str(error)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit, make it `path`.

    `mode` is "wb" or "w" (text; pass encoding/newline in open_kwargs). On any exception,
    Ctrl-C included, the temporary file is removed and `path` is untouched.
    """
    shown = path = Path(path)
    if path.name in ("", ".", ".."):
        raise RnngenError(f"cannot write {str(path)!r}: not a file name")
    if path.is_symlink():  # replace the file the link points at, and keep the link
        path = Path(os.path.realpath(path))
    try:
        mode_bits = path.stat().st_mode
    except OSError:
        mode_bits = None  # a new file (or an unreadable directory: the open below says so)
    if mode_bits is not None and not stat.S_ISREG(mode_bits):
        # A rename over a device, a FIFO or a directory would swap it for a regular file (as
        # root, even /dev/full): refuse instead. Streams are written in place by
        # rnngen.corpus.textio.output_file.
        raise RnngenError(f"cannot write {str(shown)!r}: not a regular file")
    tmp = temporary_name(path)
    try:
        with open(tmp, mode.replace("w", "x"), **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise RnngenError(f"cannot write {str(shown)!r}: {describe(error)}") from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_writer(path, "wb") as file:
        file.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically, newlines as given."""
    with atomic_writer(path, "w", encoding="utf-8", newline="") as file:
        file.write(text)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that dead processes left in `directory`; return them.

    Only names of the form `.NAME.PID.RANDOM.tmp` whose PID is no longer running are touched,
    so a concurrent live writer's file is never removed.
    """
    removed = []
    try:
        candidates = list(Path(directory).glob(f".*{TMP_SUFFIX}"))
    except OSError:
        return removed
    for candidate in candidates:
        parts = candidate.name[: -len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if not process_alive(int(parts[1])):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed
