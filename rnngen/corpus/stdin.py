"""stdin, and the other inputs read once, as they come.

Inputs read once (score's lines, eval --data/--train, ngram's files) may be FIFOs or `<(...)`
and are streamed; a corpus is read more than once, so a FIFO there is refused at once,
without opening it (which would wait for a writer). stdin for a corpus is copied to a spool
file next to the output, checked as it is copied, so that messages say "stdin".
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rnngen.corpus.textio import (
    CHUNK_BYTES,
    SPOOLS,
    ByteChecker,
    Span,
    check_input,
    is_stream,
    iter_text,
    opened,
)
from rnngen.errors import RnngenError


def stdin_binary(what: str = "stdin"):
    """sys.stdin's bytes, or one clear line when there is no stdin (`<&-`)."""
    stream = sys.stdin
    stream = getattr(stream, "buffer", stream)
    if stream is None or getattr(stream, "closed", False):
        raise RnngenError(f"{what}: stdin is closed; pipe text in, or give a file")
    return stream


def spool_stdin(directory: Path | None = None) -> Path:
    """Copy stdin to a temporary file, since tokenizing needs two passes over the text.

    The caller deletes the file; it lives in `directory` (the output's), so no large copy
    lands in /tmp by surprise. Its name (`.rnngen-stdin.txt.PID.RANDOM.tmp`) lets a later
    run remove the spool of a killed process; an error or Ctrl-C removes it at once. The
    text is checked as it is copied, so errors name stdin, not the temporary file.
    """
    from rnngen.atomic import describe, remove_stale_temporaries, temporary_name

    source = stdin_binary("reading the corpus")
    directory = Path(directory if directory is not None else tempfile.gettempdir())
    remove_stale_temporaries(directory)
    path = temporary_name(directory / "rnngen-stdin.txt")
    try:
        with open(path, "xb") as out:
            checker = ByteChecker("stdin")
            while block := source.read(CHUNK_BYTES):
                checker.check(block)
                out.write(block)
            checker.finish()
    except BaseException as e:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise RnngenError(
                f"cannot copy stdin to a temporary file in {str(directory)!r}: {describe(e)}"
            ) from None
        raise
    if checker.offset == 0:
        path.unlink(missing_ok=True)
        raise RnngenError("stdin is empty: nothing to read")
    SPOOLS.update((path, path.resolve()))
    return path


def read_stdin_text(what: str) -> str:
    """All of stdin as text, checked as it comes, so that `< /dev/zero` or `< /dev/urandom`
    fails at the first bad byte instead of reading forever."""
    source = stdin_binary(what)
    checker = ByteChecker(f"{what}: stdin")
    parts = []
    try:
        while block := source.read1(1 << 16) if hasattr(source, "read1") else source.read(1 << 16):
            parts.append(checker.check(block))
    except OSError as e:
        raise RnngenError(f"{what}: cannot read stdin: {e.strerror or e}") from None
    parts.append(checker.finish())
    return "".join(parts)


def iter_lines(source, name: str) -> Iterator[str]:
    """The lines of a binary file object (a file, a pipe, stdin) as text, streamed.

    Each line is checked (no NUL, valid UTF-8) as it comes; only "\n" ends a line. Errors
    name the line and the byte offset. Reading line by line keeps `score` interactive.
    """
    offset = 0
    try:
        for number, raw in enumerate(source, start=1):
            nul = raw.find(b"\0")
            if nul >= 0:
                raise RnngenError(
                    f"{name} looks binary: NUL byte at offset {offset + nul} (line {number})"
                )
            try:
                line = raw.decode("utf-8", errors="strict")
            except UnicodeDecodeError as e:
                raise RnngenError(
                    f"{name} is not valid UTF-8: bad byte 0x{raw[e.start]:02x} at offset "
                    f"{offset + e.start} (line {number})"
                ) from None
            offset += len(raw)
            yield line
    except OSError as e:
        raise RnngenError(f"cannot read {name}: {e.strerror or e}") from None


def open_lines(path: Path, what: str) -> Iterator[str]:
    """The checked lines of a file, a FIFO or `<(...)` (streamed, read once).

    A regular file is checked whole before its first line is given, so that a bad byte
    deep in it is an error before any output, not after hours of scoring.
    """
    path = check_input(path, what)
    if not is_stream(path):
        for _ in iter_text(Span(path, 0, path.stat().st_size)):
            pass

    def lines() -> Iterator[str]:
        with opened(path, f"{what} {str(path)!r}") as f:
            yield from iter_lines(f, f"{what} {str(path)!r}")

    return lines()
