"""`rnngen train`: tokenize (cached), train, and checkpoint whenever validation improves.

`torchrun --nproc_per_node N -m rnngen train ...` runs this same command in N processes that
train data-parallel (rnngen/distributed.py); torchrun's environment variables are all it takes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError

M, T = ModelConfig(vocab_size=1), TrainConfig()  # the defaults shown in --help


@command()
def train(
    ctx: typer.Context,
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
    preset: str = typer.Option(
        None,
        help="awd: AWD-LSTM's recipe (3x1150 LSTM, embed 400, its regularizers; for a GPU or "
        "a long run). Options given here win over it.",
    ),
    cell: str = typer.Option(
        None, help="Recurrent cell: lstm, gru, or rnn (vanilla tanh) [default: lstm]."
    ),
    size: str = typer.Option(
        "auto",
        "--size",
        help="auto (measure this machine and size the model to the run), small (1x256), "
        "base (1x512) or large (2x1024); --layers/--hidden/--embed override it.",
    ),
    layers: int = typer.Option(None, help="Stacked recurrent layers [default: by --size]."),
    hidden: int = typer.Option(None, help="Hidden units per layer [default: by --size]."),
    embed: int = typer.Option(None, help="Embedding size [default: the hidden size]."),
    dropout: float = typer.Option(
        None, help=f"Dropout on the input, between layers and on the output [default: {M.dropout}]."
    ),
    dropout_input: float = typer.Option(None, help="Dropout on the input [default: --dropout]."),
    dropout_hidden: float = typer.Option(
        None, help="Dropout between stacked layers [default: --dropout]."
    ),
    dropout_output: float = typer.Option(
        None, help="Dropout on the top layer's output [default: --dropout]."
    ),
    locked_dropout: bool = typer.Option(
        None,
        "--locked-dropout/--no-locked-dropout",
        help="One dropout mask per sequence, the same at every step (variational) [default: no].",
    ),  # fmt: skip
    embed_dropout: float = typer.Option(
        None, help=f"Share of word types dropped from the embedding [default: {M.embed_dropout}]."
    ),
    weight_drop: float = typer.Option(
        None, help="DropConnect on the hidden-to-hidden weights (AWD-LSTM) [default: 0]."
    ),
    ar: float = typer.Option(
        None, help="Activation regularization: x mean(output^2) [default: 0]."
    ),
    tar: float = typer.Option(
        None, help="Temporal activation regularization: x mean((h_t - h_t-1)^2) [default: 0]."
    ),
    variable_bptt: bool = typer.Option(
        None,
        "--variable-bptt/--no-variable-bptt",
        help="Window lengths drawn around --seq-len, the learning rate scaled to match.",
    ),  # fmt: skip
    average: bool = typer.Option(
        None,
        "--average/--no-average",
        help="Average the weights once validation stops improving (NT-ASGD); keep the average.",
    ),  # fmt: skip
    softmax: str = typer.Option(
        "auto",
        help="full, adaptive (fast at large vocabularies), or auto: adaptive from 4096 tokens.",
    ),
    tie: bool = typer.Option(
        None, "--tie/--no-tie", help="Tie input and output embeddings [default: tie]."
    ),
    residual: bool = typer.Option(
        M.residual, "--residual/--no-residual", help="Residual skips (the same as --skip residual)."
    ),
    skip: str = typer.Option(
        None,
        help="Connections between stacked layers: none, residual (add the input), highway (a "
        "learned gate mixes input and output) or dense (each layer reads all below) "
        "[default: none; residual when automatic sizing stacks layers].",
    ),
    model: str = typer.Option(
        M.model,
        "--model",
        help="rnn (a recurrent stack), or window: the fixed-window neural LM (Bengio et al. "
        "2003), --layers tanh layers --hidden wide reading only the last --window tokens.",
    ),
    window: int = typer.Option(
        None, help="Tokens the window model reads (--model window) [default: 8]."
    ),
    clip: float = typer.Option(T.clip, help="Global gradient-norm bound (0: no clipping)."),
    lr: float = typer.Option(
        None, help="Peak learning rate (AdamW) [default: by the model's width, 8e-3 at 512]."
    ),
    warmup: int = typer.Option(T.warmup_steps, help="Linear warm-up steps."),
    min_lr_ratio: float = typer.Option(T.min_lr_ratio, help="Cosine decay ends at lr x this."),
    weight_decay: float = typer.Option(T.weight_decay, help="AdamW weight decay on matrices."),
    batch_size: int = typer.Option(
        None, help=f"Parallel streams per batch [default: {T.batch_size}]."
    ),
    seq_len: int = typer.Option(
        None, help=f"Tokens per window of truncated BPTT [default: {T.seq_len}]."
    ),
    epochs: float = typer.Option(None, help="Passes over the training text [default: 10]."),
    max_steps: int = typer.Option(None, help="Stop after this many steps."),
    time_budget: str = typer.Option(
        None, help="Training time, e.g. 180, 3m, 1h: the schedule spans it exactly."
    ),
    eval_every: int = typer.Option(
        0, help="Steps between evaluations, and one at the end [default: 10 a run]."
    ),
    eval_tokens: int = typer.Option(0, help="Validation tokens per evaluation (0: all)."),
    log_every: int = typer.Option(T.log_every, help="Steps between logged metrics."),
    log: list[str] = typer.Option(
        None,
        "--log",
        metavar="tensorboard[:DIR]|wandb[:PROJECT]",
        help="Also log to TensorBoard (default DIR: runs/NAME) or Weights & Biases (honours "
        "WANDB_MODE=offline); repeatable. metrics.jsonl is written either way.",
    ),
    sample_every: int = typer.Option(
        0,
        "--sample-every",
        metavar="EVALS",
        help="At every EVALS-th evaluation, sample 200 characters at temperatures 0.5 and 1 "
        "(stderr, metrics.jsonl, loggers); the run is unchanged by it. 0: never.",
    ),
    seed: int = typer.Option(T.seed, help="Random seed."),
    device: str = typer.Option(T.device, help="auto, cpu, cuda or mps."),
    precision: str = typer.Option(T.precision, help="auto, fp32, bf16 or fp16."),
    threads: str = args.Threads,
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved at -o exactly."),
    init_from: Path = typer.Option(
        None,
        "--init-from",
        help="Fine-tune this checkpoint: its tokenizer, architecture and "
        "weights, with a fresh optimizer and schedule.",
    ),
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
    from rnngen import api
    from rnngen.cli.training_run import RunView

    if corpus is None:
        raise RnngenError("give a CORPUS to train on (a text file, a tokenized directory, or -)")
    options = given_options(ctx)  # the rest keep the library's defaults, which are the CLI's
    for name in ("corpus", "quiet", "json_output"):
        options.pop(name, None)
    stop = SignalStop()
    view = RunView(Reporter(quiet), json_output, on_loop=stop.arm, on_end=stop.disarm)
    try:
        with sigterm_as_interrupt():  # before training too, so every cleanup runs
            try:
                api.train(corpus, on_event=view, stop=stop, **options)
            finally:
                stop.disarm()
                view.close()
    except Terminated:
        typer.echo("terminated", err=True)
        raise typer.Exit(143) from None
    code = view.code if view.code is not None else 1
    code = stop.exit_code if code == 130 else code
    if code:
        raise typer.Exit(code)


def given_options(ctx: typer.Context) -> dict:
    """The options the user set (not left at their defaults), by their parameter names:
    --init-from refuses those that contradict the base, and ignores the rest."""
    defaults = {None, "DEFAULT", "DEFAULT_MAP"}
    return {
        name: value
        for name, value in ctx.params.items()
        if getattr(ctx.get_parameter_source(name), "name", None) not in defaults
    }


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


class SignalStop:
    """`stop=` for the training run: Ctrl-C (or SIGTERM) once the loop runs finishes the
    step, saves and exits 130 (SIGTERM: 143).

    Alone, a second signal aborts at once (the files on disk stay whole: every write is
    atomic). Once the run has returned, further signals are ignored: the process is exiting,
    and a late Ctrl-C must not interrupt the interpreter's shutdown with a traceback.
    Under torchrun every signal only asks for the collective stop: a rank that aborted
    mid-step would leave the others waiting in a collective, and torchrun already ends the
    job by SIGKILL once its --shutdown-timeout (30 s by default) has passed after it
    forwarded the signal.
    """

    def __init__(self):
        self.received: list[int] = []
        self.previous: dict | None = None  # the handlers before `arm`, while armed

    def is_set(self) -> bool:
        return bool(self.received)

    @property
    def exit_code(self) -> int:
        return 143 if self.received[:1] == [signal.SIGTERM] else 130

    def arm(self, distributed: bool) -> None:
        """Catch the stop signals as the training loop starts (RunView's on_loop)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def abort(signum, frame):
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

        def stop(signum, frame):
            self.received.append(signum)
            if not distributed:
                for sig in STOP_SIGNALS:
                    signal.signal(sig, abort)

        self.previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, stop)

    def disarm(self) -> None:
        if self.previous is None:
            return
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN if self.received else self.previous[sig])
        self.previous = None
