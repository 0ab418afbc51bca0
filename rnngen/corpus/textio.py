"""Reading corpora: streamed, validated, sampled and split at line ends; and where text
comes from and goes to (stdin, pipes, output files).

A corpus may be far larger than memory, so nothing here holds more than one chunk of text.
Every reader checks the bytes as it goes (UTF-8, no NUL bytes) and names the byte offset of
the first bad one, because "invalid UTF-8" alone is no help in a 200 MB file.

Inputs read once (score's lines, eval --data/--train, ngram's files) may be FIFOs or `<(...)`
and are streamed; a corpus is read more than once, so a FIFO there is refused at once,
without opening it (which would wait for a writer). stdin for a corpus is copied to a spool
file next to the output, checked as it is copied, so that messages say "stdin".
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import os
import stat
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


def name_of(path: Path) -> str:
    """How messages name a file: quoted, or `stdin` for the spool that holds stdin."""
    return "stdin" if Path(path) in _SPOOLS else repr(str(path))


_SPOOLS: set[Path] = set()  # temporary copies of stdin, named "stdin" in messages


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
            checker = _Checker("stdin")
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
    _SPOOLS.update((path, path.resolve()))
    return path


def read_stdin_text(what: str) -> str:
    """All of stdin as text, checked as it comes, so that `< /dev/zero` or `< /dev/urandom`
    fails at the first bad byte instead of reading forever."""
    source = stdin_binary(what)
    checker = _Checker(f"{what}: stdin")
    parts = []
    try:
        while block := source.read1(1 << 16) if hasattr(source, "read1") else source.read(1 << 16):
            parts.append(checker.check(block))
    except OSError as e:
        raise RnngenError(f"{what}: cannot read stdin: {e.strerror or e}") from None
    parts.append(checker.finish())
    return "".join(parts)


class _Checker:
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


def check_input(path: Path, what: str) -> Path:
    """check_file for a regular file; for a FIFO, `<(...)` or a device, only that it is
    there (opening a FIFO would wait for its writer), since it can be read once, as it comes."""
    path = Path(path)
    if is_stream(path):
        file_kind(path, what)
        return path
    return check_file(path, what)


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
        with _opened(path, f"{what} {str(path)!r}") as f:
            yield from iter_lines(f, f"{what} {str(path)!r}")

    return lines()


def read_text(path: Path, what: str) -> str:
    """All of a file's text, checked; a FIFO or `<(...)` is read once, as it streams."""
    path = Path(path)
    if not is_stream(path):
        check_file(path, what)
        return "".join(text for text, _ in iter_text(Span(path, 0, path.stat().st_size)))
    file_kind(path, what)
    checker = _Checker(f"{what} {str(path)!r}")
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
def _opened(path: Path, name: str) -> Iterator:
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
    with _opened(span.path, name) as f:
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


def sample_chars(span: Span, sample_chars: int, pieces: int = 64) -> list[str]:
    """What sample_text(text of span) gives, reading the span twice instead of holding it.

    Offsets count characters (as `rnngen ngram` has always sampled its training text), so the
    first pass counts them; the second keeps only the pieces.
    """
    total = sum(len(text) for text, _ in iter_text(span))
    if total <= sample_chars:
        return "".join(text for text, _ in iter_text(span)).split("\n")
    step, piece = total // pieces, sample_chars // pieces
    wanted = [(i * step, i * step + piece) for i in range(pieces)]  # char ranges, in order
    parts: list[list[str]] = [[] for _ in wanted]
    offset = 0
    for text, _ in iter_text(span):
        end = offset + len(text)
        for i, (lo, hi) in enumerate(wanted):
            if lo < end and hi > offset:
                parts[i].append(text[max(lo - offset, 0) : hi - offset])
        offset = end
    return [line for part in parts for line in "".join(part).split("\n")[1:-1]]


def sample_text(text: str, sample_chars: int, pieces: int = 64) -> list[str]:
    """Lines from `pieces` evenly spaced places of a text, about sample_chars characters in
    all (all of it when shorter), the partial first and last line of each place dropped."""
    if len(text) <= sample_chars:
        return text.split("\n")
    step, piece = len(text) // pieces, sample_chars // pieces
    return [
        line for i in range(pieces) for line in text[i * step : i * step + piece].split("\n")[1:-1]
    ]


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
                f"{name_of(path)} has too few lines to hold out a {name} split; "
                "give a longer corpus, or --valid FILE (and --test FILE)"
            )
    return spans


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()
