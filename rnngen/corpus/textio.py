"""Reading corpora: streamed, validated, and named in messages; and the output files and
directories every command writes.

A corpus may be far larger than memory, so nothing here holds more than one chunk of text.
Every reader checks the bytes as it goes (UTF-8, no NUL bytes) and names the byte offset of
the first bad one, because "invalid UTF-8" alone is no help in a 200 MB file.

Where a corpus is cut (held-out splits, spread samples) is `splits.py`; stdin and the other
inputs read once, as they come (FIFOs, `<(...)`), are `stdin.py`.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import os
import stat
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


def name_of(path: Path) -> str:
    """How messages name a file: quoted, or `stdin` for the spool that holds stdin."""
    return "stdin" if Path(path) in SPOOLS else repr(str(path))


SPOOLS: set[Path] = set()  # temporary copies of stdin, named "stdin" in messages


def file_kind(path: Path, what: str) -> int:
    """The st_mode of `path`, or one clear line saying why it cannot be read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RnngenError(f"{what} {str(path)!r} is a symlink loop") from None
        if e.errno == errno.ENOENT:
            dangling = os.path.islink(path)
            reason = "is a dangling symlink" if dangling else "does not exist"
            raise RnngenError(f"{what} {str(path)!r} {reason}") from None
        raise RnngenError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise RnngenError(f"{what} {str(path)!r} is a directory, not a text file")
    return mode


def is_stream(path: Path) -> bool:
    """A pipe, FIFO, socket or device: readable once, with no size to seek in."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_file(path: Path, what: str = "corpus") -> Path:
    """Fail with one clear line unless `path` is a readable, non-empty regular file.

    A FIFO or process substitution `<(...)` is refused without opening it (which would
    block until a writer comes): a corpus is read more than once.
    """
    path = Path(path)
    if not stat.S_ISREG(file_kind(path, what)):
        raise RnngenError(
            f"{what} {str(path)!r} is a pipe or device, not a regular file: rnngen reads it "
            "more than once; save it to a file first (or give a corpus on stdin as -)"
        )
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as e:
        raise RnngenError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    if size == 0:
        raise RnngenError(f"{what} {name_of(path)} is empty")
    # A first look, so a binary file is named as such before anything else is said of it;
    # iter_text checks the rest as it streams.
    for _ in iter_text(Span(path, 0, min(size, 1 << 20)), chunk_bytes=1 << 20):
        pass
    return path


def make_dir(directory: Path, what: str = "directory") -> Path:
    """mkdir -p, its failure as one clear line (a file in the way, a read-only disk...)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RnngenError(
            f"cannot create {what} {str(directory)!r}: a file of that name is in the way"
        ) from None
    except NotADirectoryError:
        raise RnngenError(
            f"cannot create {what} {str(directory)!r}: part of its path is a file"
        ) from None
    except OSError as e:
        raise RnngenError(f"cannot create {what} {str(directory)!r}: {e.strerror or e}") from None
    return directory


@contextlib.contextmanager
def output_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open an output file: atomically (rnngen.atomic) when `path` is or will be a regular
    file; written in place when it is a device or a FIFO (`/dev/stdout`, `/dev/null`, a
    named pipe), which an atomic replace would swap for a regular file (as root, even
    /dev/full). A symlink is followed, so the file it points at is the one replaced."""
    from rnngen.atomic import atomic_writer, describe

    target = os.path.realpath(path) if os.path.islink(path) else os.fspath(path)
    try:
        special = os.path.exists(target) and not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        special = False
    if not special:
        with atomic_writer(target, mode, **open_kwargs) as file:
            yield file
        return
    if stat.S_ISDIR(os.stat(target).st_mode):
        raise RnngenError(f"cannot write {str(path)!r}: it is a directory")
    try:
        with open(target, mode, **open_kwargs) as file:
            yield file
    except OSError as e:
        raise RnngenError(f"cannot write {str(path)!r}: {describe(e)}") from None


class ByteChecker:
    """Checks bytes as they stream by: no NUL, valid UTF-8; errors name the offset."""

    def __init__(self, name: str):
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self.offset = 0

    def check(self, raw: bytes, final: bool = False) -> str:
        nul = raw.find(b"\0")
        if nul >= 0:
            raise RnngenError(f"{self.name} looks binary: NUL byte at offset {self.offset + nul}")
        try:
            text = self.decoder.decode(raw, final=final)
        except UnicodeDecodeError as e:
            # e.start counts from the bytes the decoder held back plus raw
            held = len(self.decoder.getstate()[0])
            where = max(self.offset + e.start - held, 0)
            bad = e.object[e.start] if e.start < len(e.object) else 0
            raise RnngenError(
                f"{self.name} is not valid UTF-8: bad byte 0x{bad:02x} at offset {where}"
            ) from None
        self.offset += len(raw)
        return text

    def finish(self) -> str:
        return self.check(b"", final=True)


def check_input(path: Path, what: str) -> Path:
    """check_file for a regular file; for a FIFO, `<(...)` or a device, only that it is
    there (opening a FIFO would wait for its writer), since it can be read once, as it comes."""
    path = Path(path)
    if is_stream(path):
        file_kind(path, what)
        return path
    return check_file(path, what)


def read_text(path: Path, what: str) -> str:
    """All of a file's text, checked; a FIFO or `<(...)` is read once, as it streams."""
    path = Path(path)
    if not is_stream(path):
        check_file(path, what)
        return "".join(text for text, _ in iter_text(Span(path, 0, path.stat().st_size)))
    file_kind(path, what)
    checker = ByteChecker(f"{what} {str(path)!r}")
    parts = []
    try:
        with open(path, "rb") as f:
            while block := f.read(CHUNK_BYTES):
                parts.append(checker.check(block))
    except OSError as e:
        raise RnngenError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    parts.append(checker.finish())
    text = "".join(parts)
    if not text:
        raise RnngenError(f"{what} {str(path)!r} is empty (a pipe whose writer sent nothing)")
    return text


@contextlib.contextmanager
def opened(path: Path, name: str) -> Iterator:
    """open(path, "rb"), its failure as one line naming the file."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as e:
        raise RnngenError(f"cannot read {name}: {e.strerror}") from None
    with f:
        yield f


def iter_text(span: Span, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[str, int]]:
    """Yield (text, bytes) chunks of a span, each ending at a line end where possible.

    Raises RnngenError at the first NUL byte or invalid UTF-8 sequence, naming its offset.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    carry = ""
    name = name_of(span.path)
    with opened(span.path, name) as f:
        f.seek(span.start)
        offset = span.start
        while offset < span.end:
            try:
                raw = f.read(min(chunk_bytes, span.end - offset))
            except OSError as e:
                raise RnngenError(f"cannot read {name}: {e.strerror}") from None
            if not raw:
                break
            nul = raw.find(b"\0")
            if nul >= 0:
                raise RnngenError(f"{name} looks binary: NUL byte at offset {offset + nul}")
            try:
                final = offset + len(raw) >= span.end and span.end >= _size(span.path)
                text = carry + decoder.decode(raw, final=final)
            except UnicodeDecodeError as e:
                held = len(decoder.getstate()[0])
                raise RnngenError(
                    f"{name} is not valid UTF-8: bad byte 0x{e.object[e.start]:02x} "
                    f"at offset {offset + e.start - held}"
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()
