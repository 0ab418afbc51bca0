"""Word vectors from a language model: nearest pieces in its input embedding.

The input embedding of a trained LM is a set of word vectors (the first lecture's "words as
dense vectors whose neighbours are similar words"); with tied embeddings it is the output
layer's too. `nearest` ranks every piece by cosine similarity to a word's vector.

A word is looked up as it appears inside a sentence: after a space (SentencePiece's "▁"),
or bare when that takes fewer pieces (at a line start, or a tokenizer without such a piece).
A word spelled in several pieces gets the mean of their vectors, and the result says so
(`averaged`, `pieces`). A word spelled only in byte pieces has no vector of its own: that is
an error. The word's own pieces, byte pieces and the unknown piece are never neighbours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rnngen.errors import RnngenError

DEFAULT_K = 10
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


@dataclass(frozen=True)
class Neighbor:
    piece: str  # its label (piece_label)
    id: int
    similarity: float  # cosine, in [-1, 1]


@dataclass(frozen=True)
class WordNeighbors:
    word: str
    pieces: list[str]  # the labels of the pieces that spell it
    averaged: bool  # several pieces: their mean vector
    neighbors: list[Neighbor]

    def as_dict(self) -> dict:
        return asdict(self)


def piece_label(tokenizer, token_id: int) -> str:
    """A piece as SentencePiece writes it ("▁" is a leading space, "<0x0A>" a byte), with
    line ends and tabs escaped, so that it fits on one line of a table or a TSV file."""
    piece = tokenizer.sp.id_to_piece(int(token_id))
    return "".join(_ESCAPES.get(ch, ch if ch.isprintable() or ch == " " else
                                f"\\x{ord(ch):02x}") for ch in piece)  # fmt: skip


def piece_labels(tokenizer) -> list[str]:
    return [piece_label(tokenizer, i) for i in range(tokenizer.vocab_size)]


def spelling(tokenizer, word: str) -> list[int]:
    """The ids of `word` as it reads inside a sentence (see the module's docstring)."""
    if not word or not word.strip():
        raise RnngenError("give a word that is not empty or blank")
    candidates = [tokenizer.encode(word)]
    if not word[0].isspace():
        candidates.insert(0, tokenizer.encode(" " + word))
        space = tokenizer.encode(" ")
        if candidates[0][: len(space)] == space and len(candidates[0]) > len(space):
            candidates[0] = candidates[0][len(space) :]  # a space piece alone carries no word
    ids = min(candidates, key=len)  # the first (after a space) when they tie
    if all(tokenizer.sp.is_byte(i) for i in ids):
        raise RnngenError(
            f"{word!r} is spelled only in byte pieces ({len(ids)} of them): no piece of this "
            "tokenizer stands for it, so it has no vector of its own"
        )
    return ids


def nearest(embedding, tokenizer, words, k: int = DEFAULT_K) -> list[WordNeighbors]:
    """The k nearest pieces of each word by cosine similarity; `embedding` is the (V, E)
    input embedding (a tensor or an array)."""
    if k < 1:
        raise RnngenError(f"-k must be at least 1, got {k}")
    matrix = np.asarray(_numpy(embedding), dtype=np.float64)  # (V, E)
    norms = np.linalg.norm(matrix, axis=1)
    unit = matrix / np.maximum(norms, 1e-12)[:, None]
    excluded = np.array([tokenizer.sp.is_byte(i) or tokenizer.sp.is_unknown(i)
                         or tokenizer.sp.is_control(i) for i in range(len(matrix))])  # fmt: skip
    results = []
    for word in words:
        ids = spelling(tokenizer, word)
        vector = matrix[ids].mean(axis=0)  # (E,)
        similarity = unit @ (vector / max(np.linalg.norm(vector), 1e-12))  # (V,)
        similarity[excluded] = -np.inf
        similarity[ids] = -np.inf
        order = np.argsort(-similarity, kind="stable")[:k]
        order = order[np.isfinite(similarity[order])]
        neighbors = [Neighbor(piece_label(tokenizer, i), int(i), float(similarity[i]))
                     for i in order]  # fmt: skip
        labels = [piece_label(tokenizer, i) for i in ids]
        results.append(WordNeighbors(word, labels, len(ids) > 1, neighbors))
    return results


def _numpy(embedding):
    if hasattr(embedding, "detach"):
        return embedding.detach().float().cpu().numpy()
    return embedding
