"""Text in, ids out: `tokenize`, `synth` and `info` (what `rnngen tokenize`, `rnngen synth` and
`rnngen info` do), with the CLI's defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rnngen.arguments import checked


@checked(rename={"-o": "output"})
def tokenize(
    corpus: str | Path,
    output: str | Path | None = None,
    *,
    kind: str = "bpe",
    vocab_size: int | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    valid_frac: float | None = None,
    test_frac: float | None = None,
    on_progress: Callable | None = None,
):
    """What `rnngen tokenize` does: a lossless tokenizer trained on `corpus` ("-": standard
    input, spooled beside `output` for the two passes tokenizing needs), and the ids of each
    split written to `output` (default tokenized/CORPUS-NAME, tokenized/stdin for "-").
    `on_progress(done, total)` is called with the bytes tokenized. Returns the
    TokenizedCorpus (its meta: splits with tokens, characters and bytes)."""
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.splits import resolve_spans
    from rnngen.corpus.stdin import spool_stdin
    from rnngen.corpus.store import tokenize_corpus
    from rnngen.corpus.textio import make_dir

    config = TokenizerConfig(kind=kind, vocab_size=vocab_size)
    stdin = str(corpus) == "-"
    name = "stdin" if stdin else Path(corpus).stem
    output = Path(output) if output is not None else Path("tokenized") / name
    make_dir(output.parent, "output directory")
    source = spool_stdin(output.parent) if stdin else Path(corpus)
    try:
        spans = resolve_spans(
            source, *(Path(p) if p else None for p in (valid, test)), valid_frac, test_frac
        )
        provenance = {"corpus": "-" if stdin else str(corpus)}
        return tokenize_corpus(spans, output, config, on_progress, provenance)
    finally:
        if stdin:
            source.unlink(missing_ok=True)


@checked()
def synth(output, *, size: str | int | None = None, lines: int | None = None, seed: int = 0):
    """What `rnngen synth` does: the built-in corpus (English-like passages whose true entropy
    is known exactly), written to `output` (a path, written atomically, or an open text
    stream). `size` is characters (a number or "1.5M", "200k"; default 1.5M), or `lines`
    lines; the same seed, the same text. Returns its CorpusSummary (lines, chars, seed,
    bits_per_char)."""
    from rnngen.config import parse_size
    from rnngen.corpus.textio import make_dir
    from rnngen.synth import generate_corpus

    n_chars = parse_size(size)
    if not hasattr(output, "write"):
        make_dir(Path(output).parent, "output directory")
    return generate_corpus(output, n_chars=n_chars, n_lines=lines, seed=seed)


@dataclass(frozen=True)
class Info:
    """What `rnngen info` shows: `record` is what --json prints after the path (a tokenized
    directory's meta.json, or a checkpoint's metadata fields with `parameters`); a
    checkpoint's `splits` are its provenance's (name -> tokens, source)."""

    kind: str  # "tokenized" or "checkpoint"
    path: Path
    record: dict
    header: dict = field(default_factory=dict, repr=False)  # a checkpoint's raw metadata

    @property
    def splits(self) -> dict:
        """A checkpoint's splits (empty when it records none); read when asked, so that a
        damaged provenance fails only what shows it."""
        from rnngen.corpus.provenance import checkpoint_provenance

        provenance = checkpoint_provenance(self.header, required=False)
        return provenance.splits if provenance is not None else {}


@checked()
def info(path: str | Path) -> Info:
    """What a tokenized directory or a checkpoint holds. A checkpoint's weights are never
    read (only its metadata and tensor shapes), so any size is quick."""
    from rnngen.corpus.store import is_tokenized_dir, load_tokenized
    from rnngen.errors import RnngenError

    path = Path(path)
    if not path.exists():
        raise RnngenError(f"{str(path)!r} does not exist")
    if is_tokenized_dir(path):
        return Info("tokenized", path, load_tokenized(path).meta)
    if path.is_file():
        return _checkpoint_info(path)
    raise RnngenError(f"{str(path)!r} is not a tokenized directory or an rnngen checkpoint")


def _checkpoint_info(path: Path) -> Info:
    import math

    from safetensors import safe_open

    from rnngen.checkpoint import read_meta
    from rnngen.errors import RnngenError, parse_json

    def parsed(value: str):
        try:
            return parse_json(value, "a field")
        except RnngenError:
            return value

    meta = read_meta(path)
    with safe_open(str(path), framework="numpy") as f:
        names = f.keys()  # noqa: SIM118 (a safetensors handle, not a dict)
        parameters = sum(math.prod(f.get_slice(name).get_shape()) for name in names)
    fields = {k: parsed(v) for k, v in meta.items() if k != "tokenizer"}
    fields["parameters"] = parameters
    return Info("checkpoint", path, fields, meta)
