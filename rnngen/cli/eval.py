"""`rnngen eval` (model vs n-gram table) and `rnngen score` (per-line log-probabilities)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rnngen import metrics
from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import RnngenError

CheckpointArg = typer.Argument(
    None, help="A .safetensors checkpoint [default: the newest in ./checkpoints]."
)
Device = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")


def open_checkpoint(checkpoint: Path | None, device: str):
    """Load a checkpoint (the newest one when none is named) on the chosen device."""
    from rnngen.checkpoint import latest_checkpoint, load_model
    from rnngen.hardware import resolve_device

    path = checkpoint or latest_checkpoint()
    torch_device = resolve_device(device)
    model, tokenizer, meta = load_model(path, torch_device)
    return path, model, tokenizer, meta, torch_device


@command("eval")
def evaluate(
    checkpoint: Path = CheckpointArg,
    data: Path = typer.Option(
        None, "--data", help="Text to evaluate on [default: held-out split]."
    ),
    train: Path = typer.Option(
        None, "--train", help="Training text for the n-gram, if the checkpoint's corpus moved."
    ),
    ngram_order: int = typer.Option(5, "--ngram-order", help="Order of the Kneser-Ney baseline."),
    device: str = Device,
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Perplexity of the RNN side by side with a Kneser-Ney n-gram and a unigram.

    Every row scores exactly the same targets: every token of the held-out text (the
    checkpoint's test split, else its validation split, or --data FILE), each given all the
    text before it. The n-gram is trained on exactly the checkpoint's training tokens and
    cached. On text from `rnngen synth`, adds the true entropy ("oracle") and subject-verb
    agreement accuracy by distance.
    """
    from rnngen.cli.eval_report import compare
    from rnngen.ngram import MAX_ORDER

    if not 1 <= ngram_order <= MAX_ORDER:
        raise RnngenError(f"--ngram-order must be between 1 and {MAX_ORDER}, got {ngram_order}")
    reporter = Reporter(quiet)
    path, model, tokenizer, meta, torch_device = open_checkpoint(checkpoint, device)
    compare(
        reporter, path, model, tokenizer, meta, torch_device, data, train, ngram_order, json_output
    )


@command()
def score(
    checkpoint: Path = CheckpointArg,
    input_file: str = typer.Argument(
        "-", metavar="[FILE|-]", help="Lines to score [default: stdin]."
    ),
    ngram: bool = typer.Option(False, "--ngram", help="Score with the n-gram baseline instead."),
    ngram_order: int = typer.Option(5, "--ngram-order", help="Order of the n-gram baseline."),
    train: Path = typer.Option(None, "--train", help="Training text for --ngram, if moved."),
    device: str = Device,
) -> None:
    """One JSON object per input line: text, tokens, log-probability (nats), perplexity.

    Each line is scored as a line of its own (after a line end), including its newline.
    Streams: a line in, a line out, so it works in pipelines (ranking, filtering).
    """
    import numpy as np

    from rnngen.cli.output import write_stdout
    from rnngen.textio import iter_lines, open_lines, stdin_binary

    # The input is checked before the model loads: a bad one fails at once.
    if input_file == "-":
        source = iter_lines(stdin_binary("score"), "stdin")
    else:
        source = open_lines(Path(input_file), "input file")
    path, model, tokenizer, meta, torch_device = open_checkpoint(checkpoint, device)
    from rnngen.api import LineScore, score_line

    if ngram:
        from rnngen.checkpoint_data import training_ngram
        from rnngen.provenance import checkpoint_provenance

        provenance = checkpoint_provenance(meta, required=False)
        baseline = training_ngram(provenance, tokenizer, ngram_order, train).model

        def line_score(line: str) -> LineScore:
            ids = tokenizer.encode(line)
            total = float(baseline.logprobs(np.array([tokenizer.newline_id, *ids])).sum())
            total = total if ids else 0.0
            ppl = metrics.perplexity(-total / len(ids)) if ids else None
            return LineScore(line.rstrip("\n"), len(ids), total, ppl)
    else:

        def line_score(line: str) -> LineScore:
            return score_line(model, tokenizer, torch_device, line)

    for line in source:
        s = line_score(line)
        record = {"text": s.text, "tokens": s.tokens, "logprob": s.logprob, "ppl": s.ppl}
        write_stdout(json.dumps(record, ensure_ascii=False) + "\n")
