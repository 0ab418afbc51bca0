"""`rnngen gradients`: how far back each checkpoint's predictions still feel their input."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter


@command()
def gradients(
    checkpoints: list[Path] = typer.Argument(
        None,
        help="Checkpoints to compare [default: the newest in ./checkpoints].",
        show_default=False,
    ),
    data: Path = typer.Option(
        None, "--data", help="Text to measure on [default: each checkpoint's held-out split]."
    ),
    max_lag: int = typer.Option(200, "--max-lag", "-k", help="Largest lag K, in tokens."),
    positions: int = typer.Option(
        256, "--positions", help="Target positions averaged, spread evenly over the text."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Positions per backward pass."),
    plot_file: Path = typer.Option(
        None, "--plot", help="Also draw the curves (log scale) to FILE (.png, .svg or .pdf)."
    ),
    device: str = args.Device,
    threads: str = args.Threads,
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Measure the vanishing gradient: how much a prediction depends on k tokens back.

    The norm of the gradient of log p(x_t | x_<t) with respect to the input embedding and
    the hidden state k tokens back, for k = 0..K, averaged over many positions t of held-out
    text, the state carried in as eval does.

    Prints, per lag bucket, the mean norm relative to k = 0, one column pair per checkpoint
    (`input`: the embedding, `hidden`: the hidden state). A vanilla RNN's curve falls
    exponentially; an LSTM's or GRU's stays orders of magnitude higher far back. Lags count
    tokens, so compare checkpoints with the same tokenizer kind.
    """
    import rnngen.api as api

    plan = api.plan_threads(threads)
    api.check_gradient_options(max_lag, positions, batch_size, plot_file)
    reporter = Reporter(quiet)
    # Every checkpoint opened before the thread plan is logged: a bad one fails at once, with
    # its one error line alone (as eval, score and sample do).
    models = [api.load(path, device) for path in checkpoints or [None]]
    with api.computing(plan, models[0].device, reporter.log):
        results = api.gradients(models, data=data, max_lag=max_lag,
                                positions=positions, batch_size=batch_size, device=device,
                                plot=plot_file, progress=reporter.log)  # fmt: skip
    _report(results, max_lag, json_output)


def _report(results, max_lag: int, json_output: bool) -> None:
    from rnngen.cli.output import print_json, print_table

    if json_output:
        print_json({
            "max_lag": max_lag,
            "checkpoints": [{"checkpoint": str(r.path), "label": r.label, "data": r.source,
                             **r.flow.as_dict()} for r in results],
        })  # fmt: skip
        return
    header, columns = ["k (tokens back)"], []
    for r in results:
        header += [f"{r.path.stem} input", f"{r.path.stem} hidden"]
        columns += [r.flow.buckets(r.flow.input_relative), r.flow.buckets(r.flow.hidden_relative)]
    rows = [[label, *(_ratio(column[i][1]) for column in columns)]
            for i, (label, _) in enumerate(columns[0])]  # fmt: skip
    title = "gradient norm relative to k = 0"
    print_table(title, header, rows, numeric=set(range(1, len(header))))


def _ratio(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "0" if value == 0 else f"{value:.3g}"
