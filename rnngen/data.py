"""Text to token ids on disk, and token ids to training batches.

`tokenize_corpus` streams each split of a corpus through the tokenizer into a flat binary
file of ids (uint16 when the vocabulary fits) next to `tokenizer.model` and `meta.json`.
Everything is written into a temporary directory that replaces the target only when
complete, so a failure never leaves a half-written directory. `rnngen train` keeps such
directories in a cache keyed by the corpus content and tokenizer settings, so a second run
on the same corpus skips tokenization.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.config import TokenizerConfig, to_json
from rnngen.errors import RnngenError
from rnngen.textio import Span, file_sha256, iter_text, sample_lines
from rnngen.tokenizer import Tokenizer, load_tokenizer, train_tokenizer

FORMAT = "rnngen-tokens/1"
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass
class TokenizedCorpus:
    """A directory written by `tokenize_corpus`: the tokenizer and memory-mapped ids."""

    path: Path
    meta: dict
    tokenizer: Tokenizer

    def ids(self, split: str) -> np.ndarray:
        info = self.meta["splits"].get(split)
        if info is None:
            raise RnngenError(f"{str(self.path)!r} has no {split} split")
        if info["tokens"] == 0:
            return np.zeros(0, dtype=self.meta["dtype"])
        return np.memmap(self.path / info["file"], dtype=self.meta["dtype"], mode="r")

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])


def tokenize_corpus(
    spans: dict[str, Span],
    out_dir: Path,
    config: TokenizerConfig,
    on_progress: Progress | None = None,
    provenance: dict | None = None,
) -> TokenizedCorpus:
    """Train a tokenizer on a sample of the train span, then encode every span to disk."""
    _check_replaceable(Path(out_dir))
    train = spans["train"]
    sample = sample_lines(train, config.sample_bytes)
    if not any(line.strip() for line in sample):
        raise RnngenError(f"corpus {str(train.path)!r} holds only whitespace")
    tokenizer = train_tokenizer(sample, config)

    out_dir = Path(out_dir)
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    try:
        tokenizer.save(work / "tokenizer.model")
        total = sum(span.size for span in spans.values())
        done = 0
        splits = {}
        for name, span in spans.items():
            counts = {"tokens": 0, "chars": 0, "bytes": 0}
            with open(work / f"{name}.bin", "wb") as out:
                for text, nbytes in iter_text(span):
                    ids = tokenizer.encode_array(text)
                    out.write(ids.tobytes())
                    counts["tokens"] += len(ids)
                    counts["chars"] += len(text)
                    counts["bytes"] += nbytes
                    done += nbytes
                    if on_progress:
                        on_progress(done, total)
            splits[name] = {"file": f"{name}.bin", "source": str(span.path), **counts}
            splits[name].update(start=span.start, end=span.end)
        if splits["train"]["tokens"] < 2:
            raise RnngenError(f"corpus {str(train.path)!r} is too short to train on")
        meta = {
            "format": FORMAT,
            "tokenizer": {
                "kind": tokenizer.kind,
                "vocab_size": tokenizer.vocab_size,
                "sha256": tokenizer.sha256,
                "config": json.loads(to_json(config)),
            },
            "dtype": tokenizer.dtype.name,
            "splits": splits,
            "provenance": provenance or {},
        }
        (work / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        _replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return TokenizedCorpus(out_dir, meta, tokenizer)


def _check_replaceable(target: Path) -> None:
    """Only an earlier rnngen output (or an empty directory) may be replaced."""
    if target.exists() and not (
        target.is_dir() and ((target / "meta.json").exists() or not any(target.iterdir()))
    ):
        raise RnngenError(
            f"{str(target)!r} exists and is not an rnngen tokenized directory; choose another -o"
        )


def _replace_dir(new: Path, target: Path) -> None:
    """Move a finished directory into place, replacing an earlier rnngen output there."""
    if target.exists():
        _check_replaceable(target)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def is_tokenized_dir(path: Path) -> bool:
    return path.is_dir() and (path / "meta.json").is_file()


def load_tokenized(path: Path) -> TokenizedCorpus:
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        proto = (path / "tokenizer.model").read_bytes()
    except (OSError, ValueError) as e:
        raise RnngenError(
            f"{str(path)!r} is not a directory written by rnngen tokenize ({e})"
        ) from None
    return TokenizedCorpus(path, meta, load_tokenizer(proto, meta["tokenizer"]["kind"]))


def cache_root() -> Path:
    root = os.environ.get("RNNGEN_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnngen"


def cached_tokenize(
    spans: dict[str, Span], config: TokenizerConfig, on_progress: Progress | None = None
) -> TokenizedCorpus:
    """Tokenize, or reuse the directory an identical earlier run wrote.

    The key covers the bytes of every source file, the spans and the tokenizer settings, so
    an edited corpus or a different --kind never reuses stale ids.
    """
    sources = {str(s.path): file_sha256(s.path) for s in spans.values()}
    bounds = {name: (str(s.path), s.start, s.end) for name, s in spans.items()}
    path = cache_path(to_json(config), sources, bounds)
    if is_tokenized_dir(path):
        return load_tokenized(path)
    provenance = {"sources_sha256": sources}
    return tokenize_corpus(spans, path, config, on_progress, provenance)


def cache_path(config_json: str, sources: dict[str, str], bounds: dict[str, tuple]) -> Path:
    """Where `cached_tokenize` keeps the ids of these spans of these files (by content)."""
    parts = [config_json, json.dumps(sorted(sources.items()))]
    parts += [f"{name}:{p}:{start}:{end}" for name, (p, start, end) in sorted(bounds.items())]
    return cache_root() / "tokens" / hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def cached_dir_of(meta: dict) -> Path | None:
    """The cache directory a tokenized meta.json came from, if it came from the cache."""
    sources = meta.get("provenance", {}).get("sources_sha256")
    if not sources:
        return None
    config_json = json.dumps(meta["tokenizer"]["config"], sort_keys=True)
    bounds = {n: (s["source"], s["start"], s["end"]) for n, s in meta["splits"].items()}
    return cache_path(config_json, sources, bounds)


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut one id stream into `batch_size` contiguous streams, side by side: (B, N).

    Column b continues where it left off from one window to the next, which is what lets the
    hidden state carry across windows (truncated backpropagation through time).
    """
    n = len(ids) // batch_size
    return np.asarray(ids[: n * batch_size]).reshape(batch_size, n)  # (B, N)
