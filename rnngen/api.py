"""The Python API: what the CLI does, as calls that return values and never print.

    lm = load("checkpoints/synth.safetensors")       # LanguageModel, device="auto"
    "".join(lm.generate("the man", max_tokens=50, seed=1))
    lm.score(["a line", "another"])                   # [LineScore(text, tokens, logprob, ppl)]
    compare(lm, data="valid.txt", ngram_order=5)      # ComparisonReport: the eval table as data
    tokenize("corpus.txt", "tokenized/corpus")        # TokenizedCorpus, as `rnngen tokenize`
    export(lm.path, "export/synth")                   # ExportResult, as `rnngen export`
    neighbors(lm, ["king", "queen"], k=10)            # [WordNeighbors], as `rnngen neighbors`

`rnngen/__init__.py` imports this module on first use, so `import rnngen` stays torch-free.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rnngen.arguments import checked
from rnngen.errors import RnngenError
from rnngen.line_scoring import LineScore, line_scorer
from rnngen.provenance import Provenance, checkpoint_provenance

if TYPE_CHECKING:
    from rnngen.dynamic import DynamicConfig


class LanguageModel:
    """A loaded checkpoint: the RNN, its tokenizer, and what it was trained on."""

    def __init__(self, path: Path, model, tokenizer, meta: dict[str, str], device):
        self.path, self.model, self.tokenizer, self.meta = path, model, tokenizer, meta
        self.device = device  # a torch.device

    @property
    def config(self):
        """The ModelConfig (cell, layers, hidden_size, vocab_size, ...)."""
        return self.model.config

    @property
    def provenance(self) -> Provenance | None:
        """What it was trained on; None for a checkpoint that records nothing."""
        return checkpoint_provenance(self.meta, required=False)

    def __repr__(self) -> str:
        c = self.config
        return f"LanguageModel({str(self.path)!r}, {c.layers}x{c.cell} {c.hidden_size})"

    @checked(rename={"--temp": "temperature", "--length": "max_tokens"})
    def generate(
        self,
        prompt: str = "",
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        max_tokens: int = 500,
        seed: int | None = None,
        stop: str | Iterable[str] = (),
        precision: str = "fp32",
    ) -> Iterator[str]:
        """Continue `prompt` (not repeated), yielding text pieces as they are sampled.
        temperature 0 is greedy; a sample ends after max_tokens or once it contains a stop
        string (kept). The same seed gives the same text on the same machine. Arguments are
        checked at the call, before the first piece."""
        from rnngen.sample import SampleConfig, check_precision

        stops = (stop,) if isinstance(stop, str) else tuple(stop)
        seed = secrets.randbelow(2**31) if seed is None else seed
        config = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p,
                              max_tokens=max_tokens, stops=stops, seed=seed)  # fmt: skip
        check_precision(precision)
        return self._pieces(prompt, config, precision)

    def _pieces(self, prompt: str, config, precision: str) -> Iterator[str]:
        from rnngen.sample import Piece, generate

        for event in generate(self.model, self.tokenizer, prompt, config, precision):
            if isinstance(event, Piece):
                yield event.text

    @checked()
    def neighbors(self, words: Iterable[str], k: int = 10) -> list:
        """The k nearest pieces of each word in the input embedding (rnngen.word_vectors):
        [WordNeighbors(word, pieces, averaged, neighbors=[Neighbor(piece, id, similarity)])]."""
        from rnngen.word_vectors import nearest

        return nearest(self.model.embedding.weight, self.tokenizer, list(words), k)

    @checked()
    def score(self, lines: Iterable[str]) -> list[LineScore]:
        """Each line's log-probability as `rnngen score` gives it, its newline included
        (added to a line that has none). `lines` is a list (any iterable) of str: one string
        alone is refused rather than scored character by character."""
        return [
            score_line(self.model, self.tokenizer, self.device, s if s.endswith("\n") else s + "\n")
            for s in lines
        ]


def score_line(model, tokenizer, device, line: str) -> LineScore:
    """`line` exactly as given (newline and all), scored after a line end."""
    return line_scorer(tokenizer, device, model)(line)


@checked()
def load(path: str | Path | None = None, device: str = "auto") -> LanguageModel:
    """A checkpoint (the newest in ./checkpoints when none is named) on cpu, cuda or mps."""
    from rnngen.checkpoint import latest_checkpoint, load_model
    from rnngen.hardware import resolve_device

    path = Path(path) if path is not None else latest_checkpoint()
    torch_device = resolve_device(device)
    model, tokenizer, meta = load_model(path, torch_device)
    return LanguageModel(path, model, tokenizer, meta, torch_device)


@checked()
def compare(
    model_or_checkpoint: LanguageModel | str | Path | None = None,
    data: str | Path | None = None,
    *,
    ngram_order: int = 5,
    ngram_memory: int | str | None = None,
    train: str | Path | None = None,
    device: str = "auto",
    mix: float | str | None = "fit",
    dynamic: DynamicConfig | bool | None = None,
):
    """The eval table as data (a ComparisonReport): the model, a Kneser-Ney n-gram of its
    training tokens and a unigram on the same targets of `data` (default: the held-out split);
    their mixture (`mix`: "fit" for the weight fit on the validation split, a weight in [0, 1],
    or None for no mixture row); with `dynamic` (a `rnngen.dynamic.DynamicConfig`, or True for
    its defaults) the model adapting as it reads; on `rnngen synth` text also the oracle and
    agreement accuracy. `ngram_memory` bounds the n-gram's build: bytes, or a size such as
    "2G" or "25%" (default rnngen.ngram.budget.default_memory(); the model is the same
    whatever it is)."""
    from rnngen.interpolate import parse_mix
    from rnngen.ngram import MAX_ORDER
    from rnngen.ngram.budget import parse_memory
    from rnngen.report import compare_model

    if not 1 <= ngram_order <= MAX_ORDER:
        raise RnngenError(f"ngram_order must be between 1 and {MAX_ORDER}, got {ngram_order}")
    if isinstance(dynamic, bool):
        from rnngen.dynamic import DynamicConfig

        dynamic = DynamicConfig() if dynamic else None
    mix = parse_mix(str(mix)) if mix is not None else None
    lm = model_or_checkpoint
    if not isinstance(lm, LanguageModel):
        lm = load(lm, device)
    return compare_model(
        lm.model, lm.tokenizer, lm.provenance, lm.device, checkpoint=str(lm.path),
        data=Path(data) if data is not None else None,
        train=Path(train) if train is not None else None, ngram_order=ngram_order,
        ngram_memory=parse_memory(ngram_memory, "ngram_memory")
        if isinstance(ngram_memory, str) else ngram_memory,
        mix=mix, dynamic=dynamic,
    )  # fmt: skip


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
):
    """What `rnngen tokenize` does: a lossless tokenizer trained on `corpus`, and the ids of
    each split written to `output` (default tokenized/CORPUS-NAME). Returns the
    TokenizedCorpus (its meta: splits with tokens, characters and bytes)."""
    from rnngen.config import TokenizerConfig
    from rnngen.data import tokenize_corpus
    from rnngen.textio import make_dir
    from rnngen.train_data import resolve_spans

    corpus = Path(corpus)
    output = Path(output) if output is not None else Path("tokenized") / corpus.stem
    make_dir(output.parent, "output directory")
    spans = resolve_spans(
        corpus, Path(valid) if valid else None, Path(test) if test else None, valid_frac, test_frac
    )
    config = TokenizerConfig(kind=kind, vocab_size=vocab_size)
    return tokenize_corpus(spans, output, config, None, {"corpus": str(corpus)})


def export(
    checkpoint: str | Path | None = None,
    output: str | Path | None = None,
    *,
    format: str = "onnx",
    window: bool = True,
    data: str | Path | None = None,
    verify_tokens: int = 1024,
):
    """What `rnngen export` does: the checkpoint (the newest in ./checkpoints when None) as
    ONNX models, the tokenizer and model.json in `output` (default export/CHECKPOINT-NAME),
    written once onnxruntime reproduces torch's log-probabilities on `data` (default: the
    checkpoint's held-out text). Returns the ExportResult (files, sizes, verification)."""
    from rnngen.checkpoint import latest_checkpoint
    from rnngen.onnx_export import check_format, export_checkpoint

    check_format(format)
    path = Path(checkpoint) if checkpoint is not None else latest_checkpoint()
    output = Path(output) if output is not None else Path("export") / path.stem
    return export_checkpoint(path, output, format=format, window=window, data=data,
                             verify_tokens=verify_tokens)  # fmt: skip


def neighbors(model_or_checkpoint: LanguageModel | str | Path | None, words: Iterable[str],
              *, k: int = 10) -> list:  # fmt: skip
    """What `rnngen neighbors` does: each word's k nearest pieces by cosine similarity in the
    input embedding (a word in several pieces: their mean, `averaged` says so)."""
    lm = model_or_checkpoint
    if not isinstance(lm, LanguageModel):
        lm = load(lm, "cpu")
    return lm.neighbors(words, k)
