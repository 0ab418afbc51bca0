"""Text to token ids on disk, and token ids to training batches.

`tokenize_corpus` streams each split of a corpus through the tokenizer into a flat binary
file of ids (uint16 when the vocabulary fits) next to `tokenizer.model` and `meta.json`.
Everything is written into a temporary directory that replaces the target only when
complete (`workdir.py`), so a failure never leaves a half-written directory. `rnngen train`
keeps such directories in a cache keyed by the corpus content and tokenizer settings
(`cache.py`), so a second run on the same corpus skips tokenization.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnngen.atomic import (
    describe,
    remove_stale_temporaries,
    temporary_name,
    write_text,
)
from rnngen.config import TokenizerConfig, to_json
from rnngen.corpus.splits import sample_lines
from rnngen.corpus.textio import Span, iter_text, make_dir, name_of
from rnngen.corpus.tokenizer import Tokenizer, load_tokenizer, train_tokenizer
from rnngen.corpus.workdir import check_replaceable, remove_stale_work, replace_dir
from rnngen.errors import RnngenError, parse_json

FORMAT = "rnngen-tokens/1"
CHECK_CHUNK = 1 << 24  # ids checked at a time
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass
class TokenizedCorpus:
    """A directory written by `tokenize_corpus`: the tokenizer and memory-mapped ids."""

    path: Path
    meta: dict
    tokenizer: Tokenizer
    _checked: set = field(default_factory=set, repr=False)  # splits whose ids were checked

    def ids(self, split: str) -> np.ndarray:
        """The ids of a split, memory-mapped; checked once (size, range) on first use."""
        info = self.meta["splits"].get(split)
        if info is None:
            raise RnngenError(f"{str(self.path)!r} has no {split} split")
        dtype = np.dtype(self.meta["dtype"])
        if info["tokens"] == 0:
            return np.zeros(0, dtype=dtype)
        file = self.path / info["file"]
        damaged = f"{str(self.path)!r} is a damaged tokenized directory: {info['file']}"
        try:
            size = file.stat().st_size
            if size != info["tokens"] * dtype.itemsize:
                raise RnngenError(
                    f"{damaged} holds {size} bytes, not {info['tokens']} ids of {dtype.name}"
                )
            ids = np.memmap(file, dtype=dtype, mode="r")
        except OSError as e:
            raise RnngenError(f"{damaged}: {describe(e)}") from None
        if split not in self._checked:
            limit = self.tokenizer.vocab_size
            # Read, not through the mapping: a mapped page once read stays in this process's
            # resident set, and a whole corpus's worth would show in its peak memory.
            try:
                with open(file, "rb") as f:
                    while (chunk := np.fromfile(f, dtype, CHECK_CHUNK)).size:
                        top = int(chunk.max())
                        if top >= limit:
                            raise RnngenError(
                                f"{damaged} holds id {top}, out of range for a vocabulary of "
                                f"{limit}"
                            )
            except OSError as e:
                raise RnngenError(f"{damaged}: {describe(e)}") from None
            self._checked.add(split)
        return ids

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])


def tokenize_corpus(
    spans: dict[str, Span],
    out_dir: Path,
    config: TokenizerConfig,
    on_progress: Progress | None = None,
    provenance: dict | None = None,
    tokenizer: Tokenizer | None = None,
) -> TokenizedCorpus:
    """Train a tokenizer on a sample of the train span, then encode every span to disk.

    Given a `tokenizer` (fine-tuning reuses the base checkpoint's), nothing is trained and
    `config` is unused: the ids must mean what they meant to the model being continued."""
    out_dir = Path(out_dir)
    if out_dir.name in ("", ".", "..") or os.path.realpath(out_dir) == "/":
        raise RnngenError(
            f"cannot write a tokenized directory at {str(out_dir)!r}; choose another -o"
        )
    check_replaceable(out_dir)
    train = spans["train"]
    settings = tokenizer_settings(config, tokenizer)
    if tokenizer is None:
        sample = sample_lines(train, config.sample_bytes)
        if not any(line.strip() for line in sample):
            raise RnngenError(f"corpus {name_of(train.path)} holds only whitespace")
        tokenizer = train_tokenizer(sample, config)

    parent = out_dir.parent
    make_dir(parent, "output directory")
    remove_stale_work(parent)
    work = temporary_name(out_dir)
    try:
        work.mkdir()
        tokenizer.save(work / "tokenizer.model")
        total = sum(span.size for span in spans.values())
        done = 0
        splits = {}
        for name, span in spans.items():
            counts = {"tokens": 0, "chars": 0, "bytes": 0, "fallback_chars": 0, "fallback_bytes": 0}
            with open(work / f"{name}.bin", "xb") as out:
                for text, nbytes in iter_text(span):
                    ids = tokenizer.encode_array(text)
                    out.write(ids.tobytes())
                    counts["tokens"] += len(ids)
                    counts["chars"] += len(text)
                    counts["bytes"] += nbytes
                    fallback_chars, fallback_bytes = tokenizer.fallback_counts(ids)
                    counts["fallback_chars"] += fallback_chars
                    counts["fallback_bytes"] += fallback_bytes
                    done += nbytes
                    if on_progress:
                        on_progress(done, total)
                out.flush()
                os.fsync(out.fileno())
            splits[name] = {"file": f"{name}.bin", "source": str(span.path), **counts}
            splits[name].update(start=span.start, end=span.end)
        if splits["train"]["tokens"] < 2:
            raise RnngenError(f"corpus {name_of(train.path)} is too short to train on")
        meta = {
            "format": FORMAT,
            "tokenizer": {
                "kind": tokenizer.kind,
                "vocab_size": tokenizer.vocab_size,
                "sha256": tokenizer.sha256,
                "config": settings,
                # Distinct characters of the tokenizer's sample, and how many are pieces; the
                # others (and any unseen) are spelled in bytes: see each split's fallback_*.
                # (Not known of a tokenizer that was given rather than trained here.)
                **(
                    {"characters": dataclasses.asdict(tokenizer.coverage)}
                    if tokenizer.coverage is not None
                    else {}
                ),
            },
            "dtype": tokenizer.dtype.name,
            "splits": splits,
            "provenance": provenance or {},
        }
        write_text(work / "meta.json", json.dumps(meta, indent=1) + "\n")
        replace_dir(work, out_dir)
    except BaseException as e:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(e, OSError):
            raise RnngenError(
                f"cannot write tokenized directory {str(out_dir)!r}: {describe(e)}"
            ) from None
        raise
    return TokenizedCorpus(out_dir, meta, tokenizer)


def encode_to_file(texts, tokenizer: Tokenizer, directory: Path, name: str) -> np.ndarray:
    """Encode a stream of texts (each ending at a line end) into a temporary file of ids in
    `directory` and return them memory-mapped; the file is unlinked at once (the mapping keeps
    it until the array goes), so nothing is left behind whatever happens next."""
    make_dir(directory, "temporary directory")
    remove_stale_temporaries(directory)
    path = temporary_name(directory / name)
    try:
        with open(path, "xb") as out:
            for text in texts:
                out.write(tokenizer.encode_array(text).tobytes())
        size = path.stat().st_size
        if size == 0:
            return np.zeros(0, dtype=tokenizer.dtype)
        return np.memmap(path, dtype=tokenizer.dtype, mode="r")
    except OSError as e:
        raise RnngenError(
            f"cannot write the encoded text to {str(directory)!r}: {describe(e)}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def is_tokenized_dir(path: Path) -> bool:
    try:
        return path.is_dir() and (path / "meta.json").is_file()
    except OSError:
        return False


def load_tokenized(path: Path) -> TokenizedCorpus:
    """Open a tokenized directory, checking all of it (meta.json, tokenizer, every .bin file
    and the range of its ids), so that damage is one clear line here, never an IndexError
    in the middle of training."""
    path = Path(path)
    try:
        meta = parse_json((path / "meta.json").read_text(encoding="utf-8"), "meta.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else meta!r}")
        proto = (path / "tokenizer.model").read_bytes()
    except (OSError, ValueError, RnngenError) as e:
        raise RnngenError(
            f"{str(path)!r} is not a directory written by rnngen tokenize ({e})"
        ) from None
    damaged = f"{str(path)!r} is a damaged tokenized directory"
    try:
        info = _check_meta(meta)
    except KeyError as e:
        raise RnngenError(f"{damaged}: meta.json has no {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise RnngenError(f"{damaged}: meta.json {e}") from None
    if not proto:
        raise RnngenError(f"{damaged}: tokenizer.model is empty")
    try:
        tokenizer = load_tokenizer(proto, info["kind"])
    except RnngenError:
        raise RnngenError(f"{damaged}: tokenizer.model is not a SentencePiece model") from None
    if tokenizer.sha256 != info["sha256"] or tokenizer.vocab_size != info["vocab_size"]:
        raise RnngenError(
            f"{damaged}: tokenizer.model does not match meta.json (sha256 or vocabulary size)"
        )
    corpus = TokenizedCorpus(path, meta, tokenizer)
    for split in corpus.splits:
        corpus.ids(split)  # checks the file's size and the range of its ids
    return corpus


def _check_meta(meta: dict) -> dict:
    """The tokenizer entry of a meta.json, after checking every field that is used."""
    info = meta["tokenizer"]
    if not isinstance(info, dict):
        raise TypeError("'tokenizer' is not an object")
    for key, kind in (("kind", str), ("vocab_size", int), ("sha256", str)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise TypeError(f"tokenizer {key!r} is missing or not a {kind.__name__}")
    if meta.get("dtype") not in ("uint16", "uint32"):
        raise ValueError(f"dtype {meta.get('dtype')!r} is not uint16 or uint32")
    splits = meta["splits"]
    if not isinstance(splits, dict) or "train" not in splits:
        raise ValueError("'splits' has no train split")
    for name, split in splits.items():
        if not isinstance(split, dict):
            raise TypeError(f"split {name!r} is not an object")
        for key, kind in (("file", str), ("source", str)):
            if not isinstance(split.get(key), kind):
                raise TypeError(f"split {name!r} has no {key!r}")
        for key in ("tokens", "chars", "bytes"):
            value = split.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TypeError(f"split {name!r}: {key!r} is not a count")
        if Path(split["file"]).name != split["file"] or split["file"] in ("", ".", ".."):
            raise ValueError(f"split {name!r}: file {split['file']!r} is not a plain name")
    return info


def tokenizer_settings(config: TokenizerConfig, tokenizer: Tokenizer | None = None) -> dict:
    """What made a directory's tokenizer, as meta.json records it and the cache keys it: the
    settings it was trained with, or for one given ready-made, its sha256 (its pieces are
    all that matters, and the settings that made them may not be known)."""
    if tokenizer is not None:
        return {"given_sha256": tokenizer.sha256}
    return json.loads(to_json(config))


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut one id stream into `batch_size` contiguous streams, side by side: (B, N).

    Column b continues where it left off from one window to the next, which is what lets the
    hidden state carry across windows (truncated backpropagation through time).
    """
    n = len(ids) // batch_size
    return np.asarray(ids[: n * batch_size]).reshape(batch_size, n)  # (B, N)
