"""Finding what a checkpoint was trained and held out on, and the cached n-gram baseline.

A checkpoint records where its data came from (files, byte spans, sha256s, the tokenizer
config). `eval` needs that data again: the training tokens for the n-gram, and the held-out
text. In order of preference: what the user names (--train, --data), the token cache or
tokenized directory (still there even if the corpus moved; its ids decode losslessly to the
exact text), the source files if their sha256 still matches. Otherwise a clear error saying
what to pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.atomic import remove_stale_temporaries
from rnngen.corpus.cache import cache_root, cached_dir_of
from rnngen.corpus.provenance import Provenance
from rnngen.corpus.store import encode_to_file, is_tokenized_dir, load_tokenized
from rnngen.corpus.textio import (
    Span,
    check_file,
    file_sha256,
    is_stream,
    iter_text,
    make_dir,
    read_text,
)
from rnngen.corpus.tokenizer import Tokenizer
from rnngen.errors import RnngenError
from rnngen.ngram import KneserNey
from rnngen.ngram.pages import release as release_pages


@dataclass(frozen=True)
class Text:
    """A text with where it came from, for reports."""

    text: str
    source: str

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def bytes(self) -> int:
        return len(self.text.encode())


def span_text(span: Span) -> str:
    return "".join(text for text, _ in iter_text(span))


def load_stored(directory: Path):
    """The tokenized corpus in `directory`, or None when there is none or it is damaged."""
    if not is_tokenized_dir(directory):
        return None
    try:
        return load_tokenized(directory)
    except RnngenError:  # damaged: fall back to the source text
        return None


def stored_ids(
    provenance: Provenance, tokenizer: Tokenizer, split: str, load=load_stored
) -> np.ndarray | None:
    """The ids of a split from the tokenized directory or cache that training used
    (`load`: how a directory is opened; baseline.CheckpointData opens each once)."""
    candidates = [Path(provenance.tokenized)] if provenance.tokenized else []
    cached = cached_dir_of(provenance.meta.to_json())
    candidates += [cached] if cached else []
    for directory in candidates:
        corpus = load(directory)
        usable = corpus is not None and corpus.tokenizer.sha256 == tokenizer.sha256
        if usable and split in corpus.splits:
            return np.asarray(corpus.ids(split))
    return None


def source_span(provenance: Provenance, split: str) -> Span | None:
    """Where a split's text lies in its source file, if the file is unchanged."""
    info = provenance.splits.get(split)
    if info is None:
        return None
    path = Path(info.source)
    expected = provenance.meta.sources_sha256.get(info.source)
    try:
        if not path.is_file() or (expected and file_sha256(path) != expected):
            return None
    except OSError:  # unreadable now: as good as gone
        return None
    return Span(path, info.start, info.end)


def source_text(provenance: Provenance, split: str) -> str | None:
    """The text of a split re-read from its source file, if the file is unchanged."""
    span = source_span(provenance, split)
    return None if span is None else span_text(span)


def encoded_span(span: Span, tokenizer: Tokenizer) -> np.ndarray:
    """A file's span encoded a chunk at a time into a memory-mapped temporary file: a large
    training text is never held, as text or as ids."""
    texts = (text for text, _ in iter_text(span))
    return encode_to_file(texts, tokenizer, ngram_work_dir(), "rnngen-train-ids.bin")


def heldout_text(
    provenance: Provenance | None, tokenizer: Tokenizer, data: Path | None, stored=stored_ids
) -> Text:
    """What eval scores: --data FILE, else the checkpoint's held-out split."""
    if data is not None:
        return Text(read_text(data, "--data file"), str(data))
    provenance = require(provenance)
    split = provenance.heldout_split
    ids = stored(provenance, tokenizer, split)
    if ids is not None:
        return Text(tokenizer.decode(ids), f"held-out {split} split")
    text = source_text(provenance, split)
    if text is None:
        raise RnngenError(
            f"the checkpoint's {split} text is gone (its corpus moved or changed and the token "
            "cache is cleared); give --data FILE"
        )
    return Text(text, f"held-out {split} split")


def training_ids(
    provenance: Provenance | None, tokenizer: Tokenizer, train: Path | None, stored=stored_ids
) -> tuple[np.ndarray, str]:
    """The n-gram's training tokens: --train FILE, else exactly the checkpoint's."""
    if train is not None:
        if is_stream(train):  # a pipe is read once, as it comes
            return tokenizer.encode_array(read_text(train, "--train file")), str(train)
        check_file(train, "--train file")
        return encoded_span(Span(train, 0, train.stat().st_size), tokenizer), str(train)
    provenance = require(provenance)
    ids = stored(provenance, tokenizer, "train")
    if ids is not None:
        return ids, "the checkpoint's training tokens"
    span = source_span(provenance, "train")
    if span is None:
        split = provenance.splits.get("train")
        raise RnngenError(
            f"the checkpoint's training corpus {split.source if split else '?'!r} has moved or "
            "changed since training; give --train FILE for the n-gram baseline"
        )
    return encoded_span(span, tokenizer), "the checkpoint's training corpus"


def require(provenance: Provenance | None) -> Provenance:
    """The provenance, or the clear error for a checkpoint that records none."""
    return provenance if provenance is not None else Provenance.from_json(None)


def with_context(tokenizer: Tokenizer, ids: np.ndarray) -> np.ndarray:
    """Prefix one newline: held-out text starts a line, so every token of it is a target."""
    return np.concatenate([np.array([tokenizer.newline_id], dtype=ids.dtype), ids])


HASH_CHUNK = 1 << 24  # ids hashed at a time


def ngram_work_dir() -> Path:
    """Where n-gram builds put their scratch files: beside the n-gram cache, or in the
    system's temporary directory when the cache cannot be made."""
    directory = cache_root() / "ngram"
    try:
        make_dir(directory, "n-gram cache")
    except RnngenError:
        return Path(tempfile.gettempdir())
    return directory


def ngram_key(train_ids: np.ndarray, order: int, vocab_size: int, tokenizer_sha256: str) -> str:
    """What names an n-gram in the cache: its training tokens, tokenizer and order."""
    return key_of(ids_digest(train_ids), order, vocab_size, tokenizer_sha256)


def ids_digest(train_ids: np.ndarray):
    """The sha256 of the training ids (a hashlib object: copied, it names every order).

    The ids are hashed a chunk at a time (the same digest as hashing their bytes whole), and
    the pages of memory-mapped ids are given back as they go.
    """
    digest = hashlib.sha256()
    for start in range(0, len(train_ids), HASH_CHUNK):
        piece = train_ids[start : start + HASH_CHUNK]
        digest.update(np.ascontiguousarray(piece).data)
        release_pages(piece)
    return digest


def key_of(ids_digest, order: int, vocab_size: int, tokenizer_sha256: str) -> str:
    """ngram_key from the ids' digest (left as it was)."""
    digest = ids_digest.copy()
    digest.update(f"{tokenizer_sha256}:{order}:{vocab_size}".encode())
    return digest.hexdigest()[:24]


def cached_ngram(
    train_ids: np.ndarray,
    order: int,
    vocab_size: int,
    tokenizer_sha256: str,
    *,
    memory: int | None = None,
    key: str | None = None,
) -> tuple[KneserNey, bool]:
    """The n-gram of these training tokens, tokenizer and order, built once and cached.

    The model is memory-mapped from its cache file (loading is instant and processes share
    its pages); it is built within `memory` bytes (see KneserNey.fit), spilling to a scratch
    directory inside the cache's ngram/ folder. A cache of an older format is rebuilt.
    `key`: its ngram_key, when the caller has it already (the ids are hashed once).
    """
    key = key or ngram_key(train_ids, order, vocab_size, tokenizer_sha256)
    path = cache_root() / "ngram" / f"{key}.safetensors"
    if path.exists():
        try:
            return KneserNey.load(path), True
        except RnngenError:  # damaged, or an older format: build it again
            with contextlib.suppress(OSError):
                path.unlink()
    # The cache only saves time: a cache that cannot be written (a full disk, a read-only
    # directory, RNNGEN_CACHE naming a file) costs a rebuild next time, not this result.
    try:
        make_dir(path.parent, "n-gram cache")
        remove_stale_temporaries(path.parent)
    except RnngenError:
        return KneserNey.fit(train_ids, order, vocab_size, memory=memory), False
    model = KneserNey.fit(
        train_ids,
        order,
        vocab_size,
        memory=memory,
        scratch_dir=path.parent,
        path=path,
        path_optional=True,
    )
    return model, False


def build_memory(stats, memory: int | None) -> str:
    """How a build used its memory budget, for a log line."""
    from rnngen.ngram.budget import describe_memory, format_size

    spilled = (
        f"{format_size(stats.spilled_bytes)} spilled to disk"
        if stats.spilled_bytes
        else "in memory"
    )
    return f"{spilled}; n-gram memory {describe_memory(memory)}"


@dataclass(frozen=True, eq=False)
class TrainingNGram:
    """The n-gram of a checkpoint's training tokens, with what a report says about it."""

    model: KneserNey
    tokens: int  # training tokens it was built on
    source: str  # "the checkpoint's training tokens", "... corpus", or the --train path
    cached: bool  # loaded from the cache rather than built now
    seconds: float  # to load or build it
    key: str  # its name in the cache (see ngram_key)


def split_ids(
    provenance: Provenance, tokenizer: Tokenizer, split: str, stored=stored_ids
) -> np.ndarray | None:
    """The ids of one of the checkpoint's splits, from the token cache or the unchanged
    source file; None when it has no such split or the text is gone."""
    ids = stored(provenance, tokenizer, split)
    if ids is not None:
        return ids
    text = source_text(provenance, split)
    return None if text is None else tokenizer.encode_array(text)
