"""Scoring checkpoints as tables of data: `compare` (what `rnngen eval` computes), `gradients`
(`rnngen gradients`), `ngram` (`rnngen ngram`: the n-gram baseline on its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rnngen.api.language_model import LanguageModel, load
from rnngen.arguments import checked
from rnngen.scoring.baseline import memory_budget

if TYPE_CHECKING:
    from rnngen.scoring.dynamic import DynamicConfig


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
    progress: Callable | None = None,
):
    """The eval table as data (a ComparisonReport): the model, a Kneser-Ney n-gram of its
    training tokens and a unigram on the same targets of `data` (default: the held-out split);
    their mixture (`mix`: "fit" for the weight fit on the validation split, a weight in [0, 1],
    or None for no mixture row); with `dynamic` (a `rnngen.scoring.DynamicConfig`, or True for
    its defaults) the model adapting as it reads; on `rnngen synth` text also the oracle and
    agreement accuracy. `ngram_memory` bounds the n-gram's build: bytes, or a size such as
    "2G" or "25%" (default rnngen.ngram.budget.default_memory(); the model is the same
    whatever it is). `progress` receives the lines `rnngen eval` logs as the work is done.
    `report.keep_for_plot()` leaves it beside the checkpoint for `rnngen plot`, as eval does."""
    from rnngen.scoring.baseline import check_order
    from rnngen.scoring.mixture_weight import parse_mix
    from rnngen.scoring.report import compare_model

    check_order(ngram_order)
    from rnngen.scoring.dynamic import dynamic_config

    dynamic = dynamic_config(dynamic)
    mix = parse_mix(str(mix)) if mix is not None else None
    memory = memory_budget(ngram_memory)
    lm = model_or_checkpoint
    if not isinstance(lm, LanguageModel):
        lm = load(lm, device)
    return compare_model(
        lm.model, lm.tokenizer, lm.provenance, lm.device, checkpoint=str(lm.path),
        data=Path(data) if data is not None else None,
        train=Path(train) if train is not None else None, ngram_order=ngram_order,
        ngram_memory=memory, mix=mix, dynamic=dynamic, progress=progress,
    )  # fmt: skip


@checked(rename={"-k": "max_lag", "--plot": "plot"})
def gradients(
    checkpoints: LanguageModel | str | Path | list | tuple | None = None,
    *,
    data: str | Path | None = None,
    max_lag: int = 200,
    positions: int = 256,
    batch_size: int = 64,
    device: str = "auto",
    plot: str | Path | None = None,
    progress: Callable | None = None,
) -> list:
    """What `rnngen gradients` measures: for each checkpoint (the newest in ./checkpoints when
    None; one, or a list), how much a prediction depends on the input and the hidden state
    k = 0..max_lag tokens back, on `data` (default: its held-out split). Returns
    [GradientResult(path, label, source, tokens, seconds, flow)]; with `plot` (.png, .svg or
    .pdf) also draws the curves there (the file is checked before any measurement).
    `progress` receives the lines `rnngen gradients` logs."""
    check_gradient_options(max_lag, positions, batch_size, plot)
    log = progress or (lambda _: None)
    if checkpoints is None or isinstance(checkpoints, LanguageModel | str | Path):
        checkpoints = [checkpoints]
    results = []
    for checkpoint in list(checkpoints) or [None]:
        lm = checkpoint if isinstance(checkpoint, LanguageModel) else load(checkpoint, device)
        result = lm.gradients(data, max_lag=max_lag, positions=positions, batch_size=batch_size)
        log(
            f"{result.path} ({result.label}): {result.flow.positions} positions of "
            f"{result.source} ({result.tokens:,} tokens) in {result.seconds:.1f}s"
        )
        results.append(result)
    if plot is not None:
        plot_gradients(results, plot)
        log(f"wrote {plot}")
    return results


def check_gradient_options(max_lag: int, positions: int, batch_size: int,
                           plot: str | Path | None = None) -> None:  # fmt: skip
    """`gradients`' ranges and its figure's path, checked before any work is done."""
    from rnngen.scoring.gradients import check_options

    check_options(max_lag, positions, batch_size)
    if plot is not None:
        from rnngen.plot.figures import check_output

        check_output(Path(plot))  # fail before the measurement, not after it


def plot_gradients(results: list, path: str | Path) -> Path:
    """The curves of `gradients`' results drawn to `path` (log scale, relative to k = 0)."""
    from rnngen.plot.figures import Curve, gradients_figure, save_figure

    curves = [Curve(r.label, r.flow.lags, r.flow.input_relative, r.flow.hidden_relative)
              for r in results]  # fmt: skip
    return save_figure(gradients_figure(curves), Path(path))


@checked()
def ngram(
    train: str | Path,
    test: str | Path,
    *,
    order: int = 5,
    words: bool = False,
    kind: str = "bpe",
    vocab_size: int | None = None,
    arpa: str | Path | None = None,
    ngram_memory: int | str | None = None,
    progress: Callable | None = None,
):
    """What `rnngen ngram` does: an interpolated modified Kneser-Ney n-gram built on `train`
    and scored on `test`, on the tokens of a tokenizer trained on `train` (`kind`,
    `vocab_size`), or with `words` as KenLM's lmplz and query compute it. `arpa` also writes
    the model in ARPA format. Returns an NGramReport (`to_json()`: what --json prints;
    `fallback_orders`: orders with too little data for their own discounts)."""
    from rnngen.scoring.ngram_eval import ngram_report

    return ngram_report(Path(train), Path(test), order=order, words=words, kind=kind,
                        vocab_size=vocab_size, arpa=Path(arpa) if arpa is not None else None,
                        memory=ngram_memory, progress=progress)  # fmt: skip


def read_lines(path: str | Path, command: str = "score") -> Iterator[str]:
    """The checked lines of a file, or of stdin for "-", streamed (read once, as they come):
    the input of `rnngen score`. A file is checked whole before its first line is given."""
    from rnngen.corpus.stdin import iter_lines, open_lines, stdin_binary

    if str(path) == "-":
        return iter_lines(stdin_binary(command), "stdin")
    return open_lines(Path(path), "input file")
