"""`rnngen eval` (model vs n-gram table) and `rnngen score` (per-line log-probabilities)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import contradiction

CheckpointArg = typer.Argument(
    None, help="A .safetensors checkpoint [default: the newest in ./checkpoints]."
)
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
    import rnngen.api as api

    return api.DynamicConfig(learning_rate=learning_rate, segment=segment, decay=decay)


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
    device: str = args.Device,
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
    import rnngen.api as api
    from rnngen.cli.eval_report import render

    plan = api.plan_threads(threads)
    api.check_order(ngram_order)
    if no_mix and mix is not None:
        raise contradiction("--mix", "--no-mix")
    memory = api.memory_budget(ngram_memory)
    mix_option = None if no_mix else api.parse_mix("fit" if mix is None else mix)
    dynamic_options = dynamic_config(dynamic, dynamic_lr, dynamic_segment, dynamic_decay)
    reporter = Reporter(quiet)
    lm = api.load(checkpoint, device)
    with api.computing(plan, lm.device, reporter.log):
        report = api.compare(lm, data, ngram_order=ngram_order, ngram_memory=memory, train=train,
                             mix=mix_option, dynamic=dynamic_options,
                             progress=reporter.log)  # fmt: skip
        render(reporter, report, json_output)


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
    device: str = args.Device,
    threads: str = args.Threads,
    quiet: bool = args.Quiet,
) -> None:
    """One JSON object per input line: text, tokens, log-probability (nats), perplexity.

    Each line is scored as a line of its own (after a line end), including its newline.
    Streams: a line in, a line out, so it works in pipelines (ranking, filtering).
    """
    import rnngen.api as api
    from rnngen.cli.output import write_stdout

    plan = api.plan_threads(threads)
    mix_option, _ = api.line_options(ngram, mix, dynamic)
    dynamic_options = dynamic_config(dynamic, dynamic_lr, dynamic_segment, dynamic_decay)
    memory = api.memory_budget(ngram_memory)
    # The input is checked before the model loads: a bad one fails at once.
    source = api.read_lines(input_file, "score")
    lm = api.load(checkpoint, device)
    with api.computing(plan, lm.device, Reporter(quiet).log):
        scores = lm.scores(source, ngram=ngram, ngram_order=ngram_order, ngram_memory=memory,
                           mix=mix_option, dynamic=dynamic_options, train=train,
                           complete_lines=False)  # fmt: skip
        for s in scores:
            record = {"text": s.text, "tokens": s.tokens, "logprob": s.logprob, "ppl": s.ppl}
            write_stdout(json.dumps(record, ensure_ascii=False) + "\n")
