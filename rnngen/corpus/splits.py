"""Where a corpus is cut: the held-out splits (train | valid | test, at line ends only, or
given files) and the spread samples a tokenizer or an n-gram is fitted on.
"""

from __future__ import annotations

from pathlib import Path

from rnngen.corpus.textio import Span, check_file, iter_text, name_of
from rnngen.errors import RnngenError, contradiction


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


def check_held_out(valid, test, valid_frac: float | None, test_frac: float | None) -> None:
    """A held-out file and a share of the corpus for the same split contradict each other
    (checked before any work, by train as well as here)."""
    for name, file, share in (("valid", valid, valid_frac), ("test", test, test_frac)):
        if file is not None and share:  # a share of 0 says what the file says
            why = "the file is the held-out text, a share would hold out the corpus's last lines"
            raise contradiction(f"--{name}", f"--{name}-frac", why)


def resolve_spans(
    corpus: Path,
    valid: Path | None,
    test: Path | None,
    valid_frac: float | None,
    test_frac: float | None,
):
    """The byte spans of train/valid/test: given files, else the corpus's last lines."""
    # Checked before resolve(), which would raise on a symlink loop; resolved so that
    # provenance works from any directory.
    check_held_out(valid, test, valid_frac, test_frac)
    corpus = check_file(corpus).resolve()
    valid = check_file(valid, "validation file").resolve() if valid is not None else None
    test = check_file(test, "test file").resolve() if test is not None else None
    if valid_frac is None:
        valid_frac = 0.0 if valid is not None else 0.05
    if test_frac is None:
        test_frac = 0.0 if (test is not None or valid is not None) else 0.05
    for name, value in (("--valid-frac", valid_frac), ("--test-frac", test_frac)):
        if not 0.0 <= value < 0.5:
            raise RnngenError(f"{name} must be at least 0 and below 0.5, got {value}")
    spans = split_tail(
        corpus, 0.0 if valid is not None else valid_frac, 0.0 if test is not None else test_frac
    )
    if valid is not None:
        spans["valid"] = Span(valid, 0, valid.stat().st_size)
    if test is not None:
        spans["test"] = Span(test, 0, test.stat().st_size)
    order = ["train", "valid", "test"]
    return {name: spans[name] for name in order if name in spans}
