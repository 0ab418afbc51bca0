"""`rnngen gradients`: how far back each checkpoint's predictions still feel their input."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import RnngenError


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
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
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
    import time

    from rnngen.checkpoint import latest_checkpoint, load_model
    from rnngen.gradients import gradient_flow
    from rnngen.hardware import resolve_device
    from rnngen.plot_runs import describe_checkpoint
    from rnngen.threads import plan_threads

    plan = plan_threads(threads)
    if not 0 <= max_lag <= 5000:
        raise RnngenError(f"--max-lag must be between 0 and 5000, got {max_lag}")
    if not 1 <= positions <= 1_000_000:
        raise RnngenError(f"--positions must be between 1 and 1000000, got {positions}")
    if not 1 <= batch_size <= 65536:
        raise RnngenError(f"--batch-size must be between 1 and 65536, got {batch_size}")
    if plot_file is not None:
        from rnngen.plot import check_output

        check_output(plot_file)  # fail before the measurement, not after it
    reporter = Reporter(quiet)
    torch_device = resolve_device(device)
    results = []
    with args.computing(plan, torch_device, reporter):
        for path in list(checkpoints or []) or [latest_checkpoint()]:
            model, tokenizer, meta = load_model(path, torch_device)
            ids, source = _text_ids(meta, tokenizer, data)
            started = time.perf_counter()
            flow = gradient_flow(model, ids, torch_device, max_lag, positions, batch_size)
            label = describe_checkpoint(path)[0]
            reporter.log(
                f"{path} ({label}): {flow.positions} positions of {source} "
                f"({len(ids):,} tokens) in {time.perf_counter() - started:.1f}s"
            )
            results.append((path, label, source, flow))
    _report(results, max_lag, json_output)
    if plot_file is not None:
        from rnngen.plot import Curve, gradients_figure, save_figure

        curves = [Curve(label, f.lags, f.input_relative, f.hidden_relative)
                  for _, label, _, f in results]  # fmt: skip
        save_figure(gradients_figure(curves), plot_file)
        reporter.log(f"wrote {plot_file}")


def _text_ids(meta, tokenizer, data: Path | None):
    from rnngen.checkpoint_data import heldout_text, with_context
    from rnngen.provenance import checkpoint_provenance

    heldout = heldout_text(checkpoint_provenance(meta, required=False), tokenizer, data)
    ids = with_context(tokenizer, tokenizer.encode_array(heldout.text))  # (1 + targets,)
    if len(ids) < 2:
        raise RnngenError(f"{heldout.source} is empty: nothing to measure")
    return ids, heldout.source


def _report(results, max_lag: int, json_output: bool) -> None:
    from rnngen.cli.output import print_json, print_table

    if json_output:
        print_json({
            "max_lag": max_lag,
            "checkpoints": [{"checkpoint": str(path), "label": label, "data": source,
                             **flow.as_dict()} for path, label, source, flow in results],
        })  # fmt: skip
        return
    header, columns = ["k (tokens back)"], []
    for path, _, _, flow in results:
        header += [f"{path.stem} input", f"{path.stem} hidden"]
        columns += [flow.buckets(flow.input_relative), flow.buckets(flow.hidden_relative)]
    rows = [[label, *(_ratio(column[i][1]) for column in columns)]
            for i, (label, _) in enumerate(columns[0])]  # fmt: skip
    title = "gradient norm relative to k = 0"
    print_table(title, header, rows, numeric=set(range(1, len(header))))


def _ratio(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "0" if value == 0 else f"{value:.3g}"
