"""The n-gram model file: safetensors, written a block at a time, read by memory mapping.

The layout is safetensors' (an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the bytes), so any safetensors reader opens it; but
rnngen writes it without ever holding a whole tensor (the estimator's columns may be on disk),
pads the header so that every tensor starts on an 8-byte boundary, and reads it back as numpy
arrays over one read-only memory mapping: loading is instant whatever the model's size, and
processes that use the same model share its pages. Nothing is ever unpickled.

    write_model(path, metadata, tensors)    tensors: (name, array or Column) in file order
    read_model(path) -> (metadata, {name: read-only array})
    write_tables / read_tables              KneserNey's tables and stats in that file (FORMAT)
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import asdict

import numpy as np

from rnngen.atomic import atomic_writer
from rnngen.errors import RnngenError, parse_json
from rnngen.ngram import pages
from rnngen.ngram.estimate import NGramStats
from rnngen.ngram.external import Column
from rnngen.ngram.interpolation import OrderTable

_DTYPES = {"F64": np.dtype("<f8"), "I64": np.dtype("<i8")}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
BLOCK_BYTES = 1 << 24


def write_model(
    path: str | os.PathLike, metadata: dict[str, str], tensors: list[tuple[str, object]]
) -> None:
    """Write tensors (1-D float64/int64 arrays or Columns) atomically, a block at a time."""
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, tensor in tensors:
        dtype = np.dtype(tensor.dtype)
        rows = tensor.rows if isinstance(tensor, Column) else len(tensor)
        nbytes = rows * dtype.itemsize
        header[name] = {
            "dtype": _NAMES[dtype],
            "shape": [rows],
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # tensors start 8-byte aligned
    with atomic_writer(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, tensor in tensors:
            for block in _blocks(tensor):
                f.write(memoryview(np.ascontiguousarray(block)).cast("B"))
                pages.release(block)


def _blocks(tensor):
    rows = max(BLOCK_BYTES // np.dtype(tensor.dtype).itemsize, 1)
    if isinstance(tensor, Column):
        yield from tensor.blocks(rows)
    else:
        for i in range(0, len(tensor), rows):
            yield tensor[i : i + rows]


def read_model(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and tensors of a file written by write_model (or any 1-D F64/I64
    safetensors file), the tensors as read-only arrays over one memory mapping."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(length))
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except (OSError, ValueError, struct.error) as exc:
        raise RnngenError(f"cannot read n-gram model {path}: {exc}") from None
    if not isinstance(header, dict):
        raise RnngenError(f"cannot read n-gram model {path}: not a safetensors header")
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    start = 8 + length
    try:
        for name, info in header.items():
            dtype = _DTYPES[info["dtype"]]
            (rows,) = info["shape"]
            begin, end = info["data_offsets"]
            if end - begin != rows * dtype.itemsize or start + end > size or begin < 0:
                raise ValueError(f"{name}: byte range {begin}..{end} does not fit")
            tensors[name] = (
                np.frombuffer(mapping, dtype=dtype, count=rows, offset=start + begin)
                if rows
                else np.zeros(0, dtype=dtype)
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise RnngenError(f"n-gram model {path} is damaged: {exc!r}") from None
    return metadata, tensors


# --- the Kneser-Ney model in it ----------------------------------------------------------------

FORMAT = "rnngen-ngram/2"


def write_tables(path, stats: NGramStats, unigram: OrderTable, levels: list) -> None:
    """The model file: unigram tables, then per order keys, log-probabilities, backoffs."""
    tensors = [
        ("unigram_logprob", unigram.logprob),
        ("unigram_logbackoff", unigram.logbackoff),
    ]
    for k, level in enumerate(levels, start=2):
        backoff = level.logbackoff if level.logbackoff is not None else np.zeros(0)
        tensors += [
            (f"keys_{k}", level.keys),
            (f"logprob_{k}", level.logprob),
            (f"logbackoff_{k}", backoff),
        ]
    write_model(path, {"format": FORMAT, "stats": json.dumps(asdict(stats))}, tensors)


def read_tables(path: str | os.PathLike) -> tuple[NGramStats, OrderTable, list[OrderTable]]:
    """The tables `write_tables` wrote, memory-mapped (read-only arrays over the file); a
    missing, foreign, damaged or older-format file is an RnngenError."""
    meta, tensors = read_model(path)
    if meta.get("format") != FORMAT:
        older = str(meta.get("format", "")).startswith("rnngen-ngram/")
        raise RnngenError(
            f"{path} is an n-gram model of an older format ({meta.get('format')})"
            if older
            else f"{path} is not an rnngen n-gram model (format {meta.get('format')!r})"
        )
    try:
        raw = parse_json(meta["stats"], "its stats")
        raw["ngram_counts"] = {int(k): v for k, v in raw["ngram_counts"].items()}
        raw["discounts"] = {int(k): tuple(v) for k, v in raw["discounts"].items()}
        stats = NGramStats(**raw)
        unigram = OrderTable(
            np.arange(0), tensors["unigram_logprob"], tensors["unigram_logbackoff"]
        )
        levels = [
            OrderTable(tensors[f"keys_{k}"], tensors[f"logprob_{k}"], tensors[f"logbackoff_{k}"])
            for k in range(2, stats.order + 1)
        ]
        radix = stats.vocab_size + 1
        if unigram.logprob.size != radix or unigram.logbackoff.size != radix:
            raise ValueError("unigram tables do not match the vocabulary")
        for k, level in enumerate(levels, start=2):
            lower = radix if k == 2 else levels[k - 3].keys.size
            expected_backoff = 0 if k == stats.order else level.keys.size
            if level.logprob.size != level.keys.size or (level.logbackoff.size != expected_backoff):
                raise ValueError(f"order {k}'s tables differ in length")
            if level.keys.size and not 0 <= int(level.keys[-1]) < lower * radix:
                raise ValueError(f"order {k}'s keys are out of range")
    except (KeyError, TypeError, ValueError, AttributeError, RnngenError) as exc:
        raise RnngenError(f"n-gram model {path} is damaged: {exc!r}") from None
    return stats, unigram, levels
