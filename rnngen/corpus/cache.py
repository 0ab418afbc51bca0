"""The token cache: tokenized directories kept by the content of the corpus and the tokenizer
settings, so that a second run on the same text skips tokenization.

An entry is a directory written by `tokenize_corpus` under `cache_root()/tokens`, named by a
hash of the settings, the sha256 of every source file and the spans cut from them; a
damaged entry is built again. `cached_dir_of` finds a checkpoint's entry again from its
tokenized meta.json (eval's held-out data).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from rnngen.atomic import describe
from rnngen.config import TokenizerConfig
from rnngen.corpus.store import (
    Progress,
    TokenizedCorpus,
    load_tokenized,
    tokenize_corpus,
    tokenizer_settings,
)
from rnngen.corpus.textio import Span, file_sha256, make_dir
from rnngen.corpus.tokenizer import Tokenizer
from rnngen.errors import RnngenError


def cache_root() -> Path:
    root = os.environ.get("RNNGEN_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnngen"


def cached_tokenize(
    spans: dict[str, Span],
    config: TokenizerConfig,
    on_progress: Progress | None = None,
    tokenizer: Tokenizer | None = None,
) -> TokenizedCorpus:
    """Tokenize, or reuse the directory an identical earlier run wrote.

    The key covers the bytes of every source file, the spans and the tokenizer settings (or
    the sha256 of a `tokenizer` given ready-made), so an edited corpus, a different --kind or
    another base checkpoint never reuses stale ids.
    """
    sources = {str(s.path): file_sha256(s.path) for s in spans.values()}
    bounds = {name: (str(s.path), s.start, s.end) for name, s in spans.items()}
    settings = tokenizer_settings(config, tokenizer)
    path = cache_path(json.dumps(settings, sort_keys=True), sources, bounds)
    if path.exists():
        try:
            return load_tokenized(path)
        except RnngenError:  # a damaged entry (a disk error, a hand edit): build it again
            _remove_entry(path)
    make_dir(path.parent, "token cache directory (set RNNGEN_CACHE to move it)")
    provenance = {"sources_sha256": sources}
    return tokenize_corpus(spans, path, config, on_progress, provenance, tokenizer)


def _remove_entry(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as e:
        raise RnngenError(
            f"cannot remove the damaged cache entry {str(path)!r}: {describe(e)}"
        ) from None


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
