"""A lossless SentencePiece tokenizer, trained in memory.

SentencePiece is the only tokenizer library here (this is its only importer). It is set up so
that `decode(encode(s)) == s` for every string: identity normalization, no whitespace
stripping, no dummy prefix, byte fallback for every character without a piece of its own
(those the sample never showed, and the rare ones left out when the corpus has more distinct
characters than the vocabulary can hold: see alphabet.py), and "\\n" as a piece of its own
(so a line end is one token and never merges with its neighbours, which also lets a corpus
be encoded chunk by chunk, cut at line ends).

One hole remains in SentencePiece itself: it writes spaces as U+2581 "▁" and turns every "▁"
back into a space when decoding, so a literal "▁" in the text would come back as " ". We
encode a literal "▁" as its three UTF-8 byte pieces instead, which decode to "▁" verbatim.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np
import sentencepiece as spm

from rnngen.config import TokenizerConfig
from rnngen.corpus.alphabet import CHAR_SHARE, SPACE_MARK, CharacterCoverage, plan_alphabet
from rnngen.errors import RnngenError

_BYTE_PIECE = re.compile(r"^<0x([0-9A-F]{2})>$")


class Tokenizer:
    """A trained SentencePiece model plus the lossless encode/decode rules above."""

    def __init__(self, model_proto: bytes, kind: str):
        self.proto = model_proto
        self.kind = kind
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.vocab_size = self.sp.vocab_size()
        self.sha256 = hashlib.sha256(model_proto).hexdigest()
        self.newline_id = self.sp.piece_to_id("\n")
        self._space_mark_ids = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in SPACE_MARK.encode()]
        # Per id: the bytes it stands for, so decoding can be incremental and exact.
        self._piece_bytes = [self._bytes_of(i) for i in range(self.vocab_size)]
        # Per id: a byte piece, and one that starts a character (not a UTF-8 continuation
        # byte), so that counting them in encoded text counts the bytes and the characters
        # spelled in byte pieces.
        self._is_byte = np.array([self.sp.is_byte(i) for i in range(self.vocab_size)], dtype=bool)
        continues = [0x80 <= b[0] < 0xC0 if len(b) == 1 else False for b in self._piece_bytes]
        self._starts_byte_char = self._is_byte & ~np.array(continues, dtype=bool)
        # How many of the training sample's characters are pieces (set by train_tokenizer;
        # None for a tokenizer loaded from a file, whose sample is not known).
        self.coverage: CharacterCoverage | None = None

    def _bytes_of(self, token_id: int) -> bytes:
        piece = self.sp.id_to_piece(token_id)
        match = _BYTE_PIECE.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        if self.sp.is_unknown(token_id) or self.sp.is_control(token_id):
            return b""
        return piece.replace(SPACE_MARK, " ").encode()

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        return np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str], num_threads: int = -1) -> list[list[int]]:
        """Encode several independent strings, in parallel threads inside SentencePiece."""
        with _utf8_only(texts):
            if self.kind != "word" and not any(SPACE_MARK in t for t in texts):
                return self.sp.encode(list(texts), num_threads=num_threads)
            return [self._encode_escaped(text, num_threads) for text in texts]

    def _encode_escaped(self, text: str, num_threads: int) -> list[int]:
        """The slow path: literal "▁" as bytes; for word models, line by line as well.

        SentencePiece's word model ignores the "\n" piece and spells an unknown word in byte
        pieces *including* its own space mark, which would decode to "▁"; since every literal
        "▁" is split out first, such space-mark bytes are SentencePiece's, and become a space.
        """
        lines = text.split("\n") if self.kind == "word" else [text]
        ids: list[int] = []
        for line_number, line in enumerate(lines):
            if line_number:
                ids.append(self.newline_id)
            for part_number, part in enumerate(line.split(SPACE_MARK)):
                if part_number:
                    ids += self._space_mark_ids
                part_ids = self.sp.encode(part)
                ids += self._unmark_spaces(part_ids) if self.kind == "word" else part_ids
        return ids

    def _unmark_spaces(self, ids: list[int]) -> list[int]:
        mark, space = self._space_mark_ids, self.sp.piece_to_id("<0x20>")
        out, i = [], 0
        while i < len(ids):
            if ids[i] == mark[0] and ids[i : i + 3] == mark:
                out.append(space)
                i += 3
            else:
                out.append(ids[i])
                i += 1
        return out

    def encode_array(self, text: str, piece_chars: int = 16_000) -> np.ndarray:
        """Encode a long text (a chunk of a corpus) to a flat id array, using every core.

        The text is cut after line ends into pieces encoded in parallel threads; since "\\n"
        is a piece of its own, this gives exactly the ids of encoding the text whole for char,
        bpe and word (unigram may break exact Viterbi ties differently; the text is the same).
        SentencePiece's BPE slows down on long inputs, so for bpe the pieces are single lines
        (measured: about twice as fast); for the others, pieces of about `piece_chars`.
        """
        if self.kind == "bpe" and SPACE_MARK not in text:
            with _utf8_only([text]):
                return self._encode_lines(text)
        cuts = [0]
        while cuts[-1] + piece_chars < len(text):
            nl = text.find("\n", cuts[-1] + piece_chars)
            if nl < 0:
                break
            cuts.append(nl + 1)
        cuts.append(len(text))
        parts = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
        encoded = self.encode_batch(parts)
        if not encoded:
            return np.zeros(0, dtype=self.dtype)
        return np.concatenate([np.asarray(ids, dtype=self.dtype) for ids in encoded])

    def _encode_lines(self, text: str) -> np.ndarray:
        lines = text.split("\n")
        encoded = self.sp.encode(lines, num_threads=-1)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        flat = np.fromiter(
            itertools.chain.from_iterable(encoded), dtype=self.dtype, count=int(lengths.sum())
        )
        ends = np.cumsum(lengths)[:-1]  # where each line's "\n" goes
        return np.insert(flat, ends, self.newline_id)

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self._piece_bytes[int(i)] for i in ids).decode("utf-8", errors="replace")

    @property
    def character_pieces(self) -> frozenset[str]:
        """The characters that have a piece of their own (the space for "▁"); every other
        character is spelled in byte pieces, and so is a literal "▁" (see above)."""
        pieces = (self.sp.id_to_piece(i) for i in range(self.vocab_size) if self._is_char(i))
        return frozenset(piece.replace(SPACE_MARK, " ") for piece in pieces)

    def _is_char(self, token_id: int) -> bool:
        special = self.sp.is_byte(token_id) or self.sp.is_unknown(token_id)
        return not special and len(self.sp.id_to_piece(token_id)) == 1

    def fallback_counts(self, ids: np.ndarray) -> tuple[int, int]:
        """(characters, bytes) of the text `ids` encode that are spelled in byte pieces."""
        ids = np.asarray(ids)
        chars = np.count_nonzero(self._starts_byte_char[ids])
        return int(chars), int(np.count_nonzero(self._is_byte[ids]))

    def token_bytes(self, token_id: int) -> bytes:
        return self._piece_bytes[token_id]

    def decoder(self) -> IncrementalDecoder:
        return IncrementalDecoder(self)

    def save(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.proto)


_SURROGATE = re.compile("[\ud800-\udfff]")


@contextlib.contextmanager
def _utf8_only(texts: Sequence[str]):
    """SentencePiece takes text as UTF-8: a string that has none (a lone surrogate, as
    Python's surrogateescape makes of undecodable bytes) is a TypeError from inside it, made
    here one RnngenError saying where. The check runs only once encoding has failed."""
    try:
        yield
    except TypeError:
        for text in texts:
            found = _SURROGATE.search(text) if isinstance(text, str) else None
            if found:
                raise RnngenError(
                    f"the text cannot be encoded as UTF-8: a lone surrogate "
                    f"U+{ord(found.group()):04X} at character {found.start()}"
                ) from None
        raise


class IncrementalDecoder:
    """Turns ids into text one at a time, never splitting a multi-byte character.

    Byte-fallback pieces may carry a fraction of a character; they wait in a buffer until the
    character is complete. Bytes that cannot start or continue a character (a model may
    sample any sequence of byte pieces) become U+FFFD, so the text is always valid UTF-8.
    Used by streaming samplers.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def pending(self) -> bytes:
        """The bytes of an incomplete last character, waiting for the rest."""
        return self._utf8.getstate()[0]

    def feed(self, token_id: int) -> str:
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def flush(self) -> int:
        """End the text: drop the bytes of an incomplete last character, and return how many.

        Everything whole was already returned by `feed`; half a character is never text
        (printing it would put invalid UTF-8 on stdout, or a U+FFFD that was never sampled).
        """
        dropped = len(self.pending)
        self._utf8.reset()
        return dropped


def train_tokenizer(
    lines: Iterable[str], config: TokenizerConfig, char_share: float = CHAR_SHARE
) -> Tokenizer:
    """Train on a sample of lines (no newlines inside) and return the tokenizer, in memory.

    When the sample has more distinct characters than a bpe or unigram vocabulary can hold,
    the rarer ones get no piece and fall back to bytes (alphabet.py; `char_share` overrides
    the measured share of the room kept for characters, for benchmarks).
    """
    lines = [line for line in lines if line]
    if not lines:
        raise RnngenError("the corpus has no text to train a tokenizer on")
    plan = plan_alphabet(lines, config.kind, config.vocab_size, char_share)
    exact = config.vocab_size is not None and config.kind != "char"
    vocab_size = plan.vocab_size
    lines = plan.restrict(lines)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            model_type=config.kind,
            vocab_size=vocab_size,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            byte_fallback=True,
            character_coverage=1.0,  # of the characters `plan` kept
            required_chars=SPACE_MARK,  # a space must never fall back to bytes, even unseen
            allow_whitespace_only_pieces=True,
            split_digits=False,
            user_defined_symbols=["\n"],
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            max_sentence_length=1 << 20,
            # An explicit size is exact for bpe/word (unigram may settle below it); the
            # default is an upper bound, so small corpora work out of the box.
            hard_vocab_limit=exact and config.kind in ("bpe", "word"),
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise RnngenError(_explain_training_failure(str(e), config)) from None
    tokenizer = Tokenizer(model.getvalue(), config.kind)
    pieces = len(plan.alphabet & tokenizer.character_pieces)
    tokenizer.coverage = CharacterCoverage(sample=len(plan.alphabet), pieces=pieces)
    return tokenizer


def _explain_training_failure(message: str, config: TokenizerConfig) -> str:
    high = re.search(r"Please set it to a value <= (\d+)", message)
    if high:
        return (
            f"--vocab-size {config.vocab_size} is too large for this corpus with --kind "
            f"{config.kind}; use at most {high.group(1)}"
        )
    return f"could not train the {config.kind} tokenizer: {message.strip().splitlines()[-1]}"


def load_tokenizer(model_proto: bytes, kind: str) -> Tokenizer:
    try:
        return Tokenizer(model_proto, kind)
    except (RuntimeError, OSError) as e:
        raise RnngenError(f"the stored tokenizer is not a SentencePiece model ({e})") from None
