"""Reading corpora: streamed, validated, sampled and split at line ends.

A corpus may be far larger than memory, so nothing here holds more than one chunk of text.
Every reader checks the bytes as it goes (UTF-8, no NUL bytes) and names the byte offset of
the first bad one, because "invalid UTF-8" alone is no help in a 200 MB file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnngen.errors import RnngenError

CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class Span:
    """A byte range [start, end) of a file, starting and ending at line boundaries."""

    path: Path
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def check_file(path: Path, what: str = "corpus") -> Path:
    """Fail with one clear line unless `path` is a readable, non-empty regular file."""
    if not path.exists():
        raise RnngenError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise RnngenError(f"{what} {str(path)!r} is a directory, not a text file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as e:
        raise RnngenError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    if size == 0:
        raise RnngenError(f"{what} {str(path)!r} is empty")
    # A first look, so a binary file is named as such before anything else is said of it;
    # iter_text checks the rest as it streams.
    for _ in iter_text(Span(path, 0, min(size, 1 << 20)), chunk_bytes=1 << 20):
        pass
    return path


def spool_stdin(directory: Path | None = None) -> Path:
    """Copy stdin to a temporary file, since tokenizing needs two passes over the text.

    The caller deletes the file; it lives in `directory` (the output's), so no large copy
    lands in /tmp by surprise.
    """
    fd, name = tempfile.mkstemp(prefix=".rnngen-stdin-", suffix=".txt", dir=directory)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, CHUNK_BYTES)
    return Path(name)


def iter_text(span: Span, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[str, int]]:
    """Yield (text, bytes) chunks of a span, each ending at a line end where possible.

    Raises RnngenError at the first NUL byte or invalid UTF-8 sequence, naming its offset.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    carry = ""
    with open(span.path, "rb") as f:
        f.seek(span.start)
        offset = span.start
        while offset < span.end:
            raw = f.read(min(chunk_bytes, span.end - offset))
            if not raw:
                break
            nul = raw.find(b"\0")
            if nul >= 0:
                raise RnngenError(
                    f"{str(span.path)!r} looks binary: NUL byte at offset {offset + nul}"
                )
            try:
                final = offset + len(raw) >= span.end and span.end == _size(span.path)
                text = carry + decoder.decode(raw, final=final)
            except UnicodeDecodeError as e:
                raise RnngenError(
                    f"{str(span.path)!r} is not valid UTF-8: bad byte 0x{raw[e.start]:02x} "
                    f"at offset {offset + e.start}"
                ) from None
            offset += len(raw)
            cut = text.rfind("\n") + 1 if offset < span.end else len(text)
            if cut == 0:  # a very long line: keep reading until it ends
                carry = text
                continue
            head, carry = text[:cut], text[cut:]
            yield head, len(head.encode())
    if carry:
        yield carry, len(carry.encode())


def _size(path: Path) -> int:
    return path.stat().st_size


def sample_lines(span: Span, sample_bytes: int, pieces: int = 64) -> list[str]:
    """Lines from `pieces` evenly spaced places of the span, about `sample_bytes` in all.

    Spreading the sample keeps the tokenizer fair to a corpus whose style drifts, while its
    cost (time and memory) stays bounded however large the span is.
    """
    if span.size <= sample_bytes:
        return [line for text, _ in iter_text(span) for line in text.split("\n")]
    lines: list[str] = []
    piece = sample_bytes // pieces
    with open(span.path, "rb") as f:
        for i in range(pieces):
            f.seek(span.start + i * (span.size // pieces))
            raw = f.read(piece)
            # Drop the partial first and last lines; decoding errors are found by iter_text.
            lines += raw.decode("utf-8", errors="ignore").split("\n")[1:-1]
    return lines


def line_boundary(path: Path, offset: int) -> int:
    """The offset of the first line start at or after `offset` (the file size if none)."""
    size = path.stat().st_size
    if offset <= 0:
        return 0
    with open(path, "rb") as f:
        f.seek(offset - 1)
        while True:
            block = f.read(1 << 16)
            if not block:
                return size
            nl = block.find(b"\n")
            if nl >= 0:
                return min(size, f.tell() - len(block) + nl + 1)


def split_tail(path: Path, valid_frac: float, test_frac: float) -> dict[str, Span]:
    """Hold out the last lines of a file: train | valid | test, cut at line ends only."""
    size = path.stat().st_size
    test_start = line_boundary(path, round(size * (1 - test_frac))) if test_frac else size
    valid_start = (
        line_boundary(path, round(size * (1 - test_frac - valid_frac)))
        if valid_frac
        else test_start
    )
    spans = {"train": Span(path, 0, valid_start)}
    if valid_frac:
        spans["valid"] = Span(path, valid_start, test_start)
    if test_frac:
        spans["test"] = Span(path, test_start, size)
    for name, span in spans.items():
        if span.size == 0:
            raise RnngenError(
                f"{str(path)!r} has too few lines to hold out a {name} split; "
                "give a longer corpus, or --valid FILE (and --test FILE)"
            )
    return spans


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()
