"""What a checkpoint was trained on, typed: read and written here only (stdlib only, no torch).

A checkpoint's `provenance` field is JSON:

    {"corpus": "/abs/corpus.txt"}  or  {"tokenized": "/abs/tokenized/dir"},
    "tokenized_meta": the tokenized directory's meta.json: format, tokenizer (kind,
        vocab_size, sha256, config), dtype, splits (file, source, tokens, chars, bytes,
        start, end per split) and its own "provenance" (sources_sha256 when it came from
        the token cache, {"corpus": ...} when `rnngen tokenize` wrote it)

Readers used to walk it with `.get(...) or {}` chains, so a misspelled key silently gave `{}`
and a wrong error far away. Here a key is read once, and a provenance that is missing or not
of a known shape is one clear RnngenError. `to_json` gives back exactly that JSON (same keys,
same order), so checkpoints written before and after this module are the same.

Version: checkpoints so far carry no "version" key; that is version 1. A later format writes
"version": 2 or more, and this module refuses versions it does not know by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnngen.errors import RnngenError, parse_json

VERSION = 1
_SPLIT_KEYS = ("file", "source", "tokens", "chars", "bytes", "start", "end")


@dataclass(frozen=True)
class Split:
    """One split of the tokenized corpus: its ids file and the byte span of its source."""

    file: str
    source: str
    tokens: int
    chars: int
    bytes: int
    start: int
    end: int


@dataclass(frozen=True)
class TokenizedMeta:
    """The tokenized directory's meta.json, as the checkpoint copied it."""

    format: str
    tokenizer: dict  # {"kind", "vocab_size", "sha256", "config"}: the tokenizer's own record
    dtype: str
    splits: dict[str, Split]
    origin: dict = field(default_factory=dict)  # meta.json's own "provenance"

    @property
    def sources_sha256(self) -> dict[str, str]:
        """sha256 of each source file when the ids were made, by path ({} if not recorded)."""
        return dict(self.origin.get("sources_sha256") or {})

    @classmethod
    def from_json(cls, meta: dict) -> TokenizedMeta:
        splits = {
            name: Split(**{key: info[key] for key in _SPLIT_KEYS})
            for name, info in meta["splits"].items()
        }
        return cls(meta["format"], meta["tokenizer"], meta["dtype"], splits, meta["provenance"])

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "tokenizer": self.tokenizer,
            "dtype": self.dtype,
            "splits": {
                name: {key: getattr(split, key) for key in _SPLIT_KEYS}
                for name, split in self.splits.items()
            },
            "provenance": self.origin,
        }


@dataclass(frozen=True)
class Provenance:
    """Where a checkpoint's data came from: a corpus (path or "-") or a tokenized directory,
    and the tokenized meta (splits, tokenizer, source hashes) of what it trained on."""

    meta: TokenizedMeta
    corpus: str | None = None
    tokenized: str | None = None
    version: int = VERSION

    @property
    def splits(self) -> dict[str, Split]:
        return self.meta.splits

    @property
    def heldout_split(self) -> str:
        """The split eval scores: test when the run held one out, else validation."""
        return "test" if "test" in self.splits else "valid"

    @classmethod
    def from_training(cls, source: dict, meta: dict) -> Provenance:
        """What a training run records: `source` is {"corpus": path or "-"} or
        {"tokenized": directory}; `meta` the tokenized directory's meta.json."""
        return cls.from_json({**source, "tokenized_meta": meta})

    @classmethod
    def from_json(cls, value: dict | None, where: str = "the checkpoint") -> Provenance:
        """The provenance of a checkpoint's JSON field; a clear error if missing or unknown."""
        if not value:
            raise RnngenError(
                f"{where} records no training data provenance (written by an older rnngen?); "
                "give --data FILE (and --train FILE for the n-gram)"
            )
        version = value.get("version", 1) if isinstance(value, dict) else None
        if version != VERSION:
            raise RnngenError(
                f"{where} has provenance format {version!r}, which this rnngen (format "
                f"{VERSION}) cannot read; give --data FILE (and --train FILE for the n-gram)"
            )
        try:
            return cls(
                TokenizedMeta.from_json(value["tokenized_meta"]),
                corpus=value.get("corpus"),
                tokenized=value.get("tokenized"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise RnngenError(
                f"{where} has a provenance of an older or unknown format (missing {exc}); "
                "give --data FILE (and --train FILE for the n-gram)"
            ) from None

    def to_json(self) -> dict:
        """The checkpoint's JSON: exactly the shape checkpoints have always had."""
        out: dict = {} if self.version == VERSION else {"version": self.version}
        if self.corpus is not None:
            out["corpus"] = self.corpus
        if self.tokenized is not None:
            out["tokenized"] = self.tokenized
        out["tokenized_meta"] = self.meta.to_json()
        return out


def checkpoint_provenance(meta: dict[str, str], required: bool = True) -> Provenance | None:
    """The provenance of a checkpoint's metadata; None when absent and not `required`."""
    raw = meta.get("provenance")
    if raw is None and not required:
        return None
    value = parse_json(raw, "checkpoint field 'provenance'") if raw is not None else None
    if value is None and not required:
        return None
    return Provenance.from_json(value)
