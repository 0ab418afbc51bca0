"""rnngen's built-in corpus: English-like text whose exact probability is known.

We cannot ship other people's text, and a corpus we generate ourselves can teach more than one
we would borrow: because every random choice of the generator has a known probability,
`rnngen eval` can show the *floor* (the true entropy of the held-out text, which no model can
beat) beside the model and the n-gram, and can test what only a long context can know.

One line is one passage, independent of the others given the seed:

    anna tried to print her tickets. the keys that the man near the cabinets holds are on
    the table. ... at last, anna finally printed her tickets.

- Subject-verb agreement across attractors and relative clauses: the verb's number depends on
  a noun 1 to 20 words back, and the nouns in between usually have the other number, so a
  model that sees only the last few words is misled. `AgreementItem`s locate each such verb.
- Recall: the passage ends by naming again the character and the thing of its first sentence.

The probability of a line comes from its text alone (`analyse_line`): the grammar is replayed
against the words (see rnngen/synth/choice.py). Lowercase ASCII words, single spaces, "." and
"," attached to the word before, "\\n" after every passage.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from rnngen.atomic import remove_stale_temporaries
from rnngen.corpus.textio import output_file
from rnngen.errors import RnngenError
from rnngen.metrics import LN2
from rnngen.synth.choice import NoParse, Replayer, Sampler
from rnngen.synth.grammar import passage

DEFAULT_SEED = 0
DEFAULT_CHARS = 1_500_000  # a small LSTM trains on it in about 40 s on two CPU cores
DISTANCE_BUCKETS = ((1, 2), (3, 5), (6, 10), (11, None))  # inclusive word distances
BUCKET_LABELS = ("1-2", "3-5", "6-10", ">10")
PUNCTUATION = (".", ",")  # written attached to the word before


@dataclass(frozen=True)
class AgreementItem:
    """A verb whose number its subject fixes: the test a long-context model should pass.

    `offset` is the verb's character offset in its line, so `line[offset:]` starts with
    `correct`; a model passes when it prefers `correct` to `wrong` there. `distance` counts
    words from the subject's head noun to the verb (1: adjacent, "the man is").
    """

    offset: int
    correct: str
    wrong: str
    distance: int


@dataclass(frozen=True)
class LineAnalysis:
    """What the replay of one line finds: its exact -ln p (nats) and its agreement verbs."""

    nats: float
    items: tuple[AgreementItem, ...]


@dataclass(frozen=True)
class OracleResult:
    """The true process scored on a text: the floor of what any model can reach on it.

    Totals cover the lines that analyse; the others (say, a fragment where a held-out slice
    begins) are counted in `skipped_lines` and `skipped_chars`. `items` pairs each agreement
    item with the index of its line in the input.
    """

    nats: float
    chars: int
    bytes: int
    lines: int
    skipped_lines: int
    skipped_chars: int
    items: tuple[tuple[int, AgreementItem], ...]

    @property
    def bits_per_char(self) -> float:
        return self.nats / LN2 / self.chars if self.chars else math.nan

    @property
    def bits_per_byte(self) -> float:
        return self.nats / LN2 / self.bytes if self.bytes else math.nan


@dataclass(frozen=True)
class CorpusSummary:
    """What `generate_corpus` wrote; `nats` is the exact -ln p of the whole text."""

    lines: int
    chars: int
    bytes: int
    nats: float
    seed: int

    @property
    def bits_per_char(self) -> float:
        return self.nats / LN2 / self.chars if self.chars else math.nan


def generate_lines(n_lines: int, seed: int = DEFAULT_SEED) -> Iterator[str]:
    """The first `n_lines` passages for `seed`, each ending with "\\n"."""
    _check_count("n_lines", n_lines)
    samples = _samples(seed)
    return (next(samples)[0] for _ in range(n_lines))


def generate_corpus(
    out: str | os.PathLike | TextIO,
    *,
    n_chars: int | None = None,
    n_lines: int | None = None,
    seed: int = DEFAULT_SEED,
    progress: Callable[[int], None] | None = None,
) -> CorpusSummary:
    """Stream a corpus to a path (written atomically) or to an open text file.

    It holds whole lines: the first `n_lines`, or as many as reach at least `n_chars`
    characters (default DEFAULT_CHARS); so a smaller corpus of a seed is a prefix of a larger
    one. `progress`, if given, is called with the characters written so far.
    """
    _check_seed(seed)
    if n_chars is not None and n_lines is not None:
        raise RnngenError("give a size in characters or in lines, not both")
    if n_lines is None:
        n_chars = DEFAULT_CHARS if n_chars is None else n_chars
        _check_count("n_chars", n_chars)
    else:
        _check_count("n_lines", n_lines)
    if hasattr(out, "write"):
        return _write_corpus(out, n_chars, n_lines, seed, progress)
    path = os.fspath(out)
    if os.path.isdir(path):
        raise RnngenError(f"{path} is a directory; give a file name for the corpus")
    remove_stale_temporaries(os.path.dirname(path) or ".")
    with output_file(path, "w", encoding="utf-8", newline="") as file:
        return _write_corpus(file, n_chars, n_lines, seed, progress)


def analyse_line(line: str) -> LineAnalysis | None:
    """Exact -ln p and agreement items of one line (with its "\\n"), from its text alone.

    None when the generator cannot produce the line: a fragment, an edited passage, other
    text. The sum over a corpus's lines is the exact -ln p of the whole corpus.
    """
    replay = _replay(line)
    if replay is None:
        return None
    return LineAnalysis(replay.nats, _items(replay.tokens, replay.agreements))


def oracle(lines: Iterable[str]) -> OracleResult:
    """Score lines (each with its "\\n") under the true process; see `OracleResult`."""
    nats, chars, n_bytes, analysed, skipped, skipped_chars, items = 0.0, 0, 0, 0, 0, 0, []
    for index, line in enumerate(lines):
        analysis = analyse_line(line)
        if analysis is None:
            skipped += 1
            skipped_chars += len(line)
            continue
        analysed += 1
        nats += analysis.nats
        chars += len(line)
        n_bytes += len(line.encode("utf-8"))
        items.extend((index, item) for item in analysis.items)
    return OracleResult(nats, chars, n_bytes, analysed, skipped, skipped_chars, tuple(items))


def bucket_of(distance: int) -> str:
    """The label of the DISTANCE_BUCKETS bucket that holds `distance` ("1-2" ... ">10")."""
    for (low, high), label in zip(DISTANCE_BUCKETS, BUCKET_LABELS, strict=True):
        if distance >= low and (high is None or distance <= high):
            return label
    raise ValueError(f"an agreement distance is at least 1, not {distance}")


def looks_generated(text_sample: str, max_lines: int = 100) -> bool:
    """Whether a text looks like this generator's output, for eval to add the floor rows.

    True when at least 95% of the sample's first complete lines (up to `max_lines`)
    analyse. A first line that does not is ignored, since a sample cut from a file may begin
    mid-line; a last line without its "\\n" is ignored too.
    """
    pieces = text_sample.split("\n", max_lines)  # the last piece is the rest, not a line
    lines = [piece + "\n" for piece in pieces[:-1]]
    verdicts = [analyse_line(line) is not None for line in lines]
    if verdicts and not verdicts[0]:
        verdicts.pop(0)
    return bool(verdicts) and sum(verdicts) >= 0.95 * len(verdicts)


# --- internals -----------------------------------------------------------------------------


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RnngenError(f"{name} must be a positive whole number, not {value!r}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RnngenError(f"the seed must be a whole number >= 0, not {seed!r}")


def _samples(seed: int) -> Iterator[tuple[str, Sampler]]:
    """Endless (line, sampler) pairs for `seed`; the sampler holds nats, trace, agreements."""
    _check_seed(seed)
    return _sample_forever(random.Random(seed).random)


def _sample_forever(draw: Callable[[], float]) -> Iterator[tuple[str, Sampler]]:
    while True:
        sampler = Sampler(draw)
        passage(sampler)
        yield _render(sampler.tokens) + "\n", sampler


def _replay(line: str) -> Replayer | None:
    """The replay of a line's derivation, or None when the grammar cannot produce the line."""
    if not line.endswith("\n"):
        return None
    body = line[:-1]
    replay = Replayer(body.replace(".", " .").replace(",", " ,").split(" "))
    try:
        passage(replay)
    except NoParse:
        return None
    if not replay.finished() or _render(replay.tokens) != body:
        return None
    return replay


def _render(tokens: list[str]) -> str:
    return " ".join(tokens).replace(" .", ".").replace(" ,", ",")


def _items(tokens: list[str], agreements) -> tuple[AgreementItem, ...]:
    """Agreement notes (word position, correct, wrong, distance) with character offsets."""
    starts, offset = [], 0
    for i, token in enumerate(tokens):
        if i and token not in PUNCTUATION:
            offset += 1  # the space before the word
        starts.append(offset)
        offset += len(token)
    return tuple(AgreementItem(starts[p], right, wrong, d) for p, right, wrong, d in agreements)


def _write_corpus(file, n_chars, n_lines, seed, progress) -> CorpusSummary:
    samples = _samples(seed)
    lines = chars = chunk_chars = 0
    nats, chunk = 0.0, []
    for line, sampler in samples:
        if (n_lines is not None and lines >= n_lines) or (n_chars is not None and chars >= n_chars):
            break
        chunk.append(line)
        chunk_chars += len(line)
        lines, chars, nats = lines + 1, chars + len(line), nats + sampler.nats
        if chunk_chars >= 1 << 16:
            file.write("".join(chunk))
            chunk, chunk_chars = [], 0
            if progress is not None:
                progress(chars)
    file.write("".join(chunk))
    if progress is not None:
        progress(chars)
    return CorpusSummary(lines, chars, chars, nats, seed)  # ASCII: as many bytes as chars
