"""Which characters a subword vocabulary keeps as pieces, and which fall back to bytes.

SentencePiece needs one piece per character it keeps, besides the 256 byte pieces and our two
meta pieces (<unk> and "\\n"). Chinese, Japanese or Korean text, mixed scripts, emoji-heavy
chat or code with unusual Unicode can have more distinct characters than a small model's
vocabulary can hold. SentencePiece's own knob for that, `character_coverage`, cannot go below
0.98 of the character occurrences, which on such text still keeps thousands of rare
characters. So bpe and unigram choose the characters here, by frequency, and the training
sample is cut at every character left out: SentencePiece then sees only kept characters, and
learns no piece across a left-out one (as its own coverage cut does). When encoding, a
left-out character is unknown to the model and byte fallback spells it as its UTF-8 bytes, so
`decode(encode(s)) == s` still holds for every string.

How the room is shared when not every character fits: CHAR_SHARE of the pieces left after the
byte and meta pieces go to the commonest characters, the rest to merges. Measured on generated
Chinese-like text (5k distinct characters; benchmarks/bench_large_alphabet.py, BENCHMARKS.md)
at 1024, 2000 and 4000 pieces: spending the room on characters alone spells the text in 10-15%
more tokens (merges are what shorten it); spending too little on them puts more characters in
3 byte pieces each. Tokens per character are lowest at 0.5-0.65 of the room, while n-gram
bits per character mostly improve with more characters (by up to 0.8%, at 4000 pieces). 0.7
is within 0.2% of the fewest tokens at 1024 and 2000 pieces (1.5% at 4000) and close to the
n-gram's best: fewer tokens per character is what a recurrent model trained for a fixed time
gains most from (more text per second).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnngen.config import DEFAULT_VOCAB_SIZE
from rnngen.errors import RnngenError

SPACE_MARK = "\u2581"  # SentencePiece's visible space: a space in the text is this piece
FIXED_PIECES = 258  # 256 byte pieces, <unk> and "\n"
# The space (always a piece: a space spelled in bytes would decode as a literal "▁") and one
# more character: the least room a bpe or unigram vocabulary needs.
MIN_VOCAB_SIZE = FIXED_PIECES + 2
CHAR_SHARE = 0.7
# The default vocabulary is an upper bound of DEFAULT_VOCAB_SIZE pieces; a corpus whose
# characters do not fit in it gets this bound instead (the extra pieces mostly spell its
# commonest characters). Beyond it, a small model pays more for its output layer than it
# gains: 2048 x 512 multiply-adds is half the 8 x 512^2 of the default LSTM's step.
LARGE_ALPHABET_VOCAB_SIZE = 2 * DEFAULT_VOCAB_SIZE
# Never a piece: SentencePiece uses the tab internally as a boundary between pieces.
NEVER_PIECES = frozenset("\t")


@dataclass(frozen=True)
class AlphabetPlan:
    """What to ask SentencePiece for: how many pieces, and which characters may be pieces."""

    vocab_size: int
    alphabet: frozenset[str]  # distinct characters of the sample (a space, not "▁")
    kept: frozenset[str] | None  # characters to keep, as SentencePiece writes them; None: all

    def restrict(self, lines: Sequence[str]) -> list[str]:
        """The sample cut at every character left out (the pieces in between, non-empty)."""
        if self.kept is None:
            return list(lines)
        dropped = sorted(self.alphabet - {" "} - self.kept - NEVER_PIECES)
        # One character class: three times quicker than str.translate with a table this size.
        cut = re.compile("[\n" + "".join(re.escape(c) for c in dropped) + "]+")
        return [part for part in cut.split("\n".join(lines)) if part]


def plan_alphabet(
    lines: Sequence[str], kind: str, vocab_size: int | None, char_share: float = CHAR_SHARE
) -> AlphabetPlan:
    """How many pieces to train, and which characters keep one (`vocab_size` None: default).

    char: every character. word: its pieces are whole words, so characters need no room
    (an unknown word is spelled in bytes whatever this says). bpe and unigram: every
    character while they fit, else the commonest `char_share` of the room (the space first).
    """
    text = "".join(lines)
    # A set is quickest for ASCII text; counting code points with numpy, for any other.
    counts = None if text.isascii() else character_counts(text)
    alphabet = frozenset(text) if counts is None else frozenset(counts)
    # SentencePiece's view: spaces are "▁", which is always made a piece; tabs never are.
    needed = len((alphabet - {" "} - NEVER_PIECES) | {SPACE_MARK}) + FIXED_PIECES
    if kind == "char":
        return AlphabetPlan(needed, alphabet, None)
    if vocab_size is None:
        vocab_size = (
            DEFAULT_VOCAB_SIZE if needed <= DEFAULT_VOCAB_SIZE else LARGE_ALPHABET_VOCAB_SIZE
        )
    if kind == "word" or needed <= vocab_size:
        return AlphabetPlan(vocab_size, alphabet, None)
    if vocab_size < MIN_VOCAB_SIZE:
        raise RnngenError(
            f"--vocab-size {vocab_size} is too small: with 256 byte-fallback pieces, {kind} "
            f"needs at least {MIN_VOCAB_SIZE} (or use --kind char)"
        )
    room = vocab_size - FIXED_PIECES
    keep = min(room, max(2, round(char_share * room)))
    counts = counts or character_counts(text)
    return AlphabetPlan(vocab_size, alphabet, frozenset(commonest(counts, keep)))


def character_counts(text: str) -> dict[str, int]:
    """How often each character occurs in `text` (numpy: several times quicker than Counter)."""
    counts = np.bincount(np.frombuffer(text.encode("utf-32-le"), dtype="<u4"))
    return {chr(code): int(counts[code]) for code in np.flatnonzero(counts)}


def commonest(counts: dict[str, int], keep: int) -> list[str]:
    """The `keep` commonest characters as SentencePiece counts them (spaces as "▁", which
    always comes first), ties broken by code point so that the choice is reproducible."""
    counts = dict(counts)
    counts[SPACE_MARK] = counts.get(SPACE_MARK, 0) + counts.pop(" ", 0)
    for char in NEVER_PIECES:
        counts.pop(char, None)
    ranked = sorted(counts.items(), key=lambda item: (item[0] != SPACE_MARK, -item[1], item[0]))
    return [char for char, _ in ranked[:keep]]


@dataclass(frozen=True)
class CharacterCoverage:
    """How many of the sample's distinct characters became pieces of their own."""

    sample: int  # distinct characters of the tokenizer's training sample
    pieces: int  # of them, those with a piece of their own (the others fall back to bytes)
