"""`rnngen eval` (model vs n-gram table) and `rnngen score` (per-line log-probabilities)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import RnngenError, contradiction

CheckpointArg = typer.Argument(
    None, help="A .safetensors checkpoint [default: the newest in ./checkpoints]."
)
Device = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
DynamicLr = typer.Option(0.1, "--dynamic-lr", help="SGD step of dynamic evaluation.")
DynamicSegment = typer.Option(
    16, "--dynamic-segment", help="Tokens scored between two dynamic-evaluation updates."
)
DynamicDecay = typer.Option(
    0.0, "--dynamic-decay", help="Pull back towards the trained weights after each update."
)


def dynamic_config(enabled: bool, learning_rate: float, segment: int, decay: float):
    """The DynamicConfig of the --dynamic options (checked), or None when off."""
    if not enabled:
        return None
    from rnngen.dynamic import DynamicConfig

    return DynamicConfig(learning_rate=learning_rate, segment=segment, decay=decay)


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
    ngram_memory: str = args.NgramMemory,
    mix: str = typer.Option(
        None,
        "--mix",
        metavar="fit|LAMBDA",
        help="Weight of the n-gram in the RNN + n-gram row: 'fit' (by EM on the validation "
        "split, cached) or a number in [0, 1] [default: fit].",
        show_default=False,
    ),
    no_mix: bool = typer.Option(False, "--no-mix", help="Leave out the RNN + n-gram row."),
    dynamic: bool = typer.Option(
        False, "--dynamic", help="Add rows for dynamic evaluation (the RNN adapting as it reads)."
    ),
    dynamic_lr: float = DynamicLr,
    dynamic_segment: int = DynamicSegment,
    dynamic_decay: float = DynamicDecay,
    device: str = Device,
    threads: str = args.Threads,
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Perplexity of the RNN side by side with a Kneser-Ney n-gram and a unigram.

    Every row scores exactly the same targets: every token of the held-out text (the
    checkpoint's test split, else its validation split, or --data FILE), each given all the
    text before it. The n-gram is trained on exactly the checkpoint's training tokens and
    cached. A row mixes the two, p = (1 - λ) p_rnn + λ p_ngram, with λ fit on the validation
    split. On text from `rnngen synth`, adds the true entropy ("oracle") and subject-verb
    agreement accuracy by distance.
    """
    from rnngen.cli.eval_report import EvalOptions, compare
    from rnngen.interpolate import parse_mix
    from rnngen.ngram import MAX_ORDER
    from rnngen.threads import plan_threads

    plan = plan_threads(threads)
    if not 1 <= ngram_order <= MAX_ORDER:
        raise RnngenError(f"--ngram-order must be between 1 and {MAX_ORDER}, got {ngram_order}")
    if no_mix and mix is not None:
        raise contradiction("--mix", "--no-mix")
    options = EvalOptions(
        data=data,
        train=train,
        ngram_order=ngram_order,
        ngram_memory=args.ngram_memory(ngram_memory),
        mix=None if no_mix else parse_mix("fit" if mix is None else mix),
        dynamic=dynamic_config(dynamic, dynamic_lr, dynamic_segment, dynamic_decay),
        json_output=json_output,
    )
    reporter = Reporter(quiet)
    path, model, tokenizer, meta, torch_device = open_checkpoint(checkpoint, device)
    with args.computing(plan, torch_device, reporter):
        compare(reporter, path, model, tokenizer, meta, torch_device, options)


@command()
def score(
    checkpoint: Path = CheckpointArg,
    input_file: str = typer.Argument(
        "-", metavar="[FILE|-]", help="Lines to score [default: stdin]."
    ),
    ngram: bool = typer.Option(False, "--ngram", help="Score with the n-gram baseline instead."),
    ngram_order: int = typer.Option(5, "--ngram-order", help="Order of the n-gram baseline."),
    ngram_memory: str = args.NgramMemory,
    mix: str = typer.Option(
        None,
        "--mix",
        metavar="fit|LAMBDA",
        help="Score with the RNN + n-gram mixture: 'fit' (the weight fit on the validation "
        "split, as eval reports it) or the n-gram's weight in [0, 1].",
    ),
    dynamic: bool = typer.Option(
        False, "--dynamic", help="Let the RNN adapt from line to line (dynamic evaluation)."
    ),
    dynamic_lr: float = DynamicLr,
    dynamic_segment: int = DynamicSegment,
    dynamic_decay: float = DynamicDecay,
    train: Path = typer.Option(None, "--train", help="Training text for the n-gram, if moved."),
    device: str = Device,
    threads: str = args.Threads,
    quiet: bool = args.Quiet,
) -> None:
    """One JSON object per input line: text, tokens, log-probability (nats), perplexity.

    Each line is scored as a line of its own (after a line end), including its newline.
    Streams: a line in, a line out, so it works in pipelines (ranking, filtering).
    """
    from rnngen.cli.output import write_stdout
    from rnngen.interpolate import parse_mix
    from rnngen.textio import iter_lines, open_lines, stdin_binary
    from rnngen.threads import plan_threads

    plan = plan_threads(threads)
    for other, given in (("--mix", mix is not None), ("--dynamic", dynamic)):
        if ngram and given:
            raise contradiction("--ngram", other, "--ngram scores with the n-gram alone")
    mix_option = parse_mix(mix) if mix is not None else None
    dynamic_options = dynamic_config(dynamic, dynamic_lr, dynamic_segment, dynamic_decay)
    memory = args.ngram_memory(ngram_memory)
    # The input is checked before the model loads: a bad one fails at once.
    if input_file == "-":
        source = iter_lines(stdin_binary("score"), "stdin")
    else:
        source = open_lines(Path(input_file), "input file")
    path, model, tokenizer, meta, torch_device = open_checkpoint(checkpoint, device)
    with args.computing(plan, torch_device, Reporter(quiet)):
        line_score = _line_scorer(model, tokenizer, meta, torch_device, ngram, ngram_order,
                                  mix_option, dynamic_options, train, memory)  # fmt: skip
        for line in source:
            s = line_score(line)
            record = {"text": s.text, "tokens": s.tokens, "logprob": s.logprob, "ppl": s.ppl}
            write_stdout(json.dumps(record, ensure_ascii=False) + "\n")


def _line_scorer(model, tokenizer, meta, torch_device, ngram: bool, ngram_order: int,
                 mix_option, dynamic_options, train: Path | None, memory):  # fmt: skip
    """score's line_scorer: the RNN, the n-gram, or their mixture, adapting or not."""
    from rnngen.line_scoring import line_scorer

    baseline, weight = None, None
    if ngram or mix_option is not None:
        from rnngen.checkpoint_data import training_ngram
        from rnngen.interpolate import mixture_weight
        from rnngen.provenance import checkpoint_provenance

        provenance = checkpoint_provenance(meta, required=False)
        baseline = training_ngram(provenance, tokenizer, ngram_order, train, memory=memory)
        if mix_option is not None:
            weight = mixture_weight(
                mix_option, model, tokenizer, provenance, baseline, torch_device
            ).weight
    return line_scorer(
        tokenizer,
        torch_device,
        model=None if ngram else model,
        ngram=baseline.model if baseline is not None else None,
        weight=weight,
        dynamic=dynamic_options,
    )
