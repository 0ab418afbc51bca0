"""`rnngen train`: tokenize (cached), train, and checkpoint whenever validation improves.

`torchrun --nproc_per_node N -m rnngen train ...` runs this same command in N processes that
train data-parallel (rnngen/distributed.py); torchrun's environment variables are all it takes.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError

M, T = ModelConfig(vocab_size=1), TrainConfig()  # the defaults, stated once in config.py


def parse_duration(text: str | None) -> float | None:
    """'180', '90s', '3m', '1h30m' -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text
    )
    if not text.strip() or not match or not any(match.groups()):
        raise RnngenError(f"--time-budget {text!r} is not a duration such as 180, 90s, 3m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@command()
def train(
    corpus: str = typer.Argument(
        None, help="Text file, a directory from rnngen tokenize, or - for stdin."
    ),
    valid: Path = args.Valid,
    test: Path = args.Test,
    valid_frac: float = args.ValidFrac,
    test_frac: float = args.TestFrac,
    output: Path = typer.Option(
        None, "-o", "--output", help="Checkpoint [default: checkpoints/CORPUS-NAME.safetensors]."
    ),
    kind: str = args.Kind,
    vocab_size: int | None = args.VocabSize,
    cell: str = typer.Option(M.cell, help="Recurrent cell: lstm, gru, or rnn (vanilla tanh)."),
    size: str = typer.Option(
        "auto",
        "--size",
        help="auto (measure this machine and size the model to the run), small (1x256), "
        "base (1x512) or large (2x1024); --layers/--hidden/--embed override it.",
    ),
    layers: int = typer.Option(None, help="Stacked recurrent layers [default: by --size]."),
    hidden: int = typer.Option(None, help="Hidden units per layer [default: by --size]."),
    embed: int = typer.Option(None, help="Embedding size [default: the hidden size]."),
    dropout: float = typer.Option(M.dropout, help="Dropout between layers and on the output."),
    embed_dropout: float = typer.Option(
        M.embed_dropout, help="Share of word types dropped from the embedding per batch."
    ),
    tie: bool = typer.Option(M.tie, "--tie/--no-tie", help="Tie input and output embeddings."),
    residual: bool = typer.Option(
        M.residual, "--residual/--no-residual", help="Skip connections between stacked layers."
    ),
    clip: float = typer.Option(T.clip, help="Global gradient-norm bound (0: no clipping)."),
    lr: float = typer.Option(T.lr, help="Peak learning rate (AdamW)."),
    warmup: int = typer.Option(T.warmup_steps, help="Linear warm-up steps."),
    min_lr_ratio: float = typer.Option(T.min_lr_ratio, help="Cosine decay ends at lr x this."),
    weight_decay: float = typer.Option(T.weight_decay, help="AdamW weight decay on matrices."),
    batch_size: int = typer.Option(T.batch_size, help="Parallel streams per batch."),
    seq_len: int = typer.Option(T.seq_len, help="Tokens per window of truncated BPTT."),
    epochs: float = typer.Option(None, help="Passes over the training text [default: 10]."),
    max_steps: int = typer.Option(None, help="Stop after this many steps."),
    time_budget: str = typer.Option(
        None, help="Training time, e.g. 180, 3m, 1h: the schedule spans it exactly."
    ),
    eval_every: int = typer.Option(0, help="Steps between evaluations [default: 10 a run]."),
    eval_tokens: int = typer.Option(0, help="Validation tokens per evaluation (0: all)."),
    log_every: int = typer.Option(T.log_every, help="Steps between logged metrics."),
    seed: int = typer.Option(T.seed, help="Random seed."),
    device: str = typer.Option(T.device, help="auto, cpu, cuda or mps."),
    precision: str = typer.Option(T.precision, help="auto, fp32, bf16 or fp16."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved at -o exactly."),
    force: bool = typer.Option(False, "--force", help="Replace an existing checkpoint at -o."),
    quiet: bool = args.Quiet,
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Train a stacked LSTM/GRU language model on CORPUS.

    Writes OUTPUT (the best model so far, self-contained: weights, configs, tokenizer,
    metrics), OUTPUT.state.safetensors (for --resume) and OUTPUT.metrics.jsonl. Ctrl-C saves
    the state and exits 130 (SIGTERM: the same, exit 143); run again with --resume to
    continue. A second run on the same OUTPUT is refused while this one runs. Under torchrun
    the processes train data-parallel, each on batch-size / processes of the streams.
    """
    train_config = TrainConfig(
        batch_size=batch_size, seq_len=seq_len, lr=lr, min_lr_ratio=min_lr_ratio,
        warmup_steps=warmup, weight_decay=weight_decay, clip=clip, epochs=epochs,
        max_steps=max_steps, time_budget=parse_duration(time_budget), eval_every=eval_every,
        eval_tokens=eval_tokens, log_every=log_every, seed=seed, device=device,
        precision=precision,
    )  # fmt: skip
    model_options = dict(
        cell=cell, layers=layers, hidden_size=hidden, embed_size=embed, dropout=dropout,
        embed_dropout=embed_dropout, tie=tie, residual=residual,
    )  # fmt: skip
    model_options = resolve_size(size, model_options)
    ModelConfig(vocab_size=1, **complete(model_options))  # check the options before any work
    reporter = Reporter(quiet)
    if corpus is None:
        raise RnngenError("give a CORPUS to train on (a text file, a tokenized directory, or -)")
    from rnngen.cli.training_run import TrainingRun
    from rnngen.distributed import Group

    group = Group.from_env()  # a single process unless torchrun started this one
    group.stream_range(batch_size)  # an uneven split fails before any work
    run = TrainingRun(reporter, train_config, model_options, json_output, group)
    try:
        with sigterm_as_interrupt():  # before training too, so every cleanup runs
            run.prepare_output(output, corpus, resume, force, inputs=(valid, test))
            run.connect()
            run.load_data(corpus, valid, test, valid_frac, test_frac, kind, vocab_size)
            run.build(resume)
            code = train_until_interrupted(run, group.enabled)
    except Terminated:
        typer.echo("terminated", err=True)
        code = 143
    finally:
        run.release()
        group.close()
    if code:
        raise typer.Exit(code)


def resolve_size(size: str, options: dict) -> dict:
    """Fill the model's layers and widths from --size; what the user gave always wins.

    With `--size auto` and no --layers/--hidden given, they stay None: the training run then
    measures this machine and chooses (rnngen/sizing.py). An --embed alone is kept as given.
    """
    from rnngen.sizing import SIZES

    if size not in ("auto", *SIZES):
        raise RnngenError(f"--size must be auto, {', '.join(SIZES)}; got {size!r}")
    options = dict(options)
    if size == "auto" and options["layers"] is None and options["hidden_size"] is None:
        return options
    layers, hidden = SIZES.get(size, (M.layers, M.hidden_size))
    options["layers"] = layers if options["layers"] is None else options["layers"]
    options["hidden_size"] = hidden if options["hidden_size"] is None else options["hidden_size"]
    return options


def complete(options: dict) -> dict:
    """The model options with every size filled: the embedding as wide as the hidden layer
    unless given, and ModelConfig's defaults for what auto-sizing has yet to choose."""
    options = dict(options)
    for name in ("layers", "hidden_size"):
        options[name] = getattr(M, name) if options[name] is None else options[name]
    if options["embed_size"] is None:
        options["embed_size"] = options["hidden_size"]
    return options


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program was, so that every `finally` cleans up."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Outside the training loop, SIGTERM stops the command as Ctrl-C would (exit 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)


def train_until_interrupted(run, distributed: bool) -> int:
    """Train; Ctrl-C (or SIGTERM) finishes the step, saves and exits 130 (SIGTERM: 143).

    Alone, a second signal aborts at once (the files on disk stay whole: every write is
    atomic). Once the run has returned, further signals are ignored: the process is exiting,
    and a late Ctrl-C must not interrupt the interpreter's shutdown with a traceback.
    Under torchrun every signal only asks for the collective stop: a rank that aborted
    mid-step would leave the others waiting in a collective, and torchrun already ends the
    job by SIGKILL once its --shutdown-timeout (30 s by default) has passed after it
    forwarded the signal.
    """
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    received: list[int] = []

    def abort(signum, frame):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def stop(signum, frame):
        received.append(signum)
        run.trainer.request_stop()
        if not distributed:
            for sig in STOP_SIGNALS:
                signal.signal(sig, abort)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    try:
        code = run.train()
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN if received else previous[sig])
    return 143 if code == 130 and received[:1] == [signal.SIGTERM] else code


def format_eval(evaluation, chars_per_token: float) -> str:
    bpc = evaluation.valid_loss / (math.log(2) * chars_per_token)
    star = " *" if evaluation.is_best else ""
    return (
        f"step {evaluation.step}: valid loss {evaluation.valid_loss:.4f} "
        f"ppl {math.exp(min(evaluation.valid_loss, 700)):.2f} bpc {bpc:.4f} "
        f"({evaluation.valid_tokens} tokens, best {evaluation.best_loss:.4f}){star}"
    )
