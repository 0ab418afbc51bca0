"""`rnngen sample`: stream text from a checkpoint (or its n-gram baseline) to stdout."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.config import DEVICES
from rnngen.errors import RnngenError, contradiction

DEFAULT_LENGTH = 500
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@command()
def sample(
    checkpoint: Path = typer.Argument(
        None, help="A .safetensors checkpoint [default: the newest in ./checkpoints]."
    ),
    temp: float = typer.Option(
        1.0, "--temp", help="Temperature: below 1 plainer, above 1 wilder; 0 is greedy."
    ),
    top_k: int = typer.Option(0, "--top-k", help="Sample among the K likeliest tokens (0: all)."),
    top_p: float = typer.Option(
        1.0, "--top-p", help="Sample among the fewest likeliest tokens holding P of the mass."
    ),
    prompt: str = typer.Option(
        None, "--prompt", help="Text to continue, read as the start of a line; - reads stdin."
    ),
    length: int = typer.Option(
        None,
        "--length",
        help=f"Tokens (not characters) per sample [default: {DEFAULT_LENGTH}; with --chars, "
        "as many as N characters need].",
        show_default=False,
    ),
    chars: int = typer.Option(None, "--chars", help="End each sample after N characters."),
    num_samples: int = typer.Option(1, "-n", "--num-samples", help="Samples, run as one batch."),
    seed: int = typer.Option(
        None, "--seed", help="Sample i uses seed SEED+i [default: random, logged on stderr]."
    ),
    stop: list[str] = typer.Option(
        None, "--stop", help="End a sample once it contains STRING (printed too); repeatable."
    ),
    separator: str = typer.Option(
        "\n",
        "--separator",
        help="Printed between samples, each ended by a newline first [default: an empty line].",
        show_default=False,
    ),
    no_echo: bool = typer.Option(False, "--no-echo", help="Do not print the prompt."),
    json_output: bool = typer.Option(
        False, "--json", help="One JSON object per sample: index, prompt, text, tokens, seed."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto (bf16 on CPUs with native bf16, about twice as fast there; else fp32), "
        "fp32, bf16 or fp16 (GPUs).",
    ),
    threads: str = args.Threads,
    ngram: bool = typer.Option(
        False, "--ngram", help="Sample the Kneser-Ney baseline of the checkpoint's training text."
    ),
    ngram_order: int = typer.Option(
        5, "--ngram-order", help="Order of the --ngram or --mix n-gram."
    ),
    ngram_memory: str = args.NgramMemory,
    mix: str = typer.Option(
        None,
        "--mix",
        metavar="fit|LAMBDA",
        help="Sample the RNN + n-gram mixture: 'fit' (the weight fit on the validation split, "
        "as eval reports it) or the n-gram's weight in [0, 1].",
    ),
    quiet: bool = args.Quiet,
) -> None:
    """Generate text from CHECKPOINT, streamed to stdout as it is sampled.

    Each sample continues the prompt (echoed unless --no-echo), or starts a new line. All
    samples run as one batch: the first streams live while the others wait in memory, each
    printed as soon as all before it are. The same --seed gives the same text on the same
    machine; sample i of `-n N --seed S` is the sample `--seed S+i` gives alone (up to
    floating-point rounding, which batch shapes may change).
    """
    from rnngen.sample import SampleConfig

    stops = tuple(utf8_option("--stop", s) for s in stop or ())
    separator = utf8_option("--separator", separator)
    config = SampleConfig(
        temperature=temp, top_k=top_k, top_p=top_p, max_chars=chars, stops=stops,
        max_tokens=default_length(chars) if length is None else length,
        num_samples=num_samples, seed=secrets.randbelow(2**31) if seed is None else seed,
    )  # fmt: skip
    if device not in DEVICES:
        raise RnngenError(f"unknown device {device!r}; use one of {DEVICES}")
    if precision not in PRECISIONS:
        raise RnngenError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    from rnngen.threads import plan_threads

    plan = plan_threads(threads)
    mix_option = None
    if mix is not None:
        from rnngen.interpolate import parse_mix

        if ngram:
            raise contradiction("--ngram", "--mix", "--ngram samples the n-gram alone")
        mix_option = parse_mix(mix)
    if ngram or mix_option is not None:
        from rnngen.ngram import MAX_ORDER

        if not 1 <= ngram_order <= MAX_ORDER:
            raise RnngenError(f"--ngram-order must be between 1 and {MAX_ORDER}, got {ngram_order}")
    memory = args.ngram_memory(ngram_memory)
    prompt = read_prompt(prompt)
    reporter = Reporter(quiet)
    path, model, tokenizer, meta = _load(checkpoint, device)
    with args.computing(plan, model.embedding.weight.device, reporter):
        mixture = None
        if ngram:
            model = fit_ngram(meta, tokenizer, ngram_order, reporter, memory=memory).model
            precision = "fp32"
        else:
            if mix_option is not None:
                mixture = mixture_of(
                    model, tokenizer, meta, ngram_order, mix_option, reporter, memory=memory
                )
            precision = sampling_precision(precision, model.embedding.weight.device)
            c = model.config
            reporter.log(
                f"sampling {path} ({c.layers}x{c.cell} {c.hidden_size}, {tokenizer.kind} vocab "
                f"{tokenizer.vocab_size}) on {model.embedding.weight.device.type} {precision}"
            )
        if not config.greedy:
            reporter.log(f"seed {config.seed}")
        from rnngen.sample import Done, Piece, generate

        echo = "" if no_echo else prompt
        writer = JsonWriter(config, prompt) if json_output else TextWriter(config, echo, separator)
        for event in generate(model, tokenizer, prompt, config, precision, mixture=mixture):
            if isinstance(event, Piece):
                writer.piece(event.index, event.text)
            elif isinstance(event, Done):
                writer.done(event)


def default_length(chars: int | None) -> int:
    """Without --length: 500 tokens, or with --chars enough for N characters (a character
    takes at most 4 byte tokens), so that --chars alone decides where a sample ends."""
    return DEFAULT_LENGTH if chars is None else 4 * max(chars, 0) + 16


def read_prompt(prompt: str | None) -> str:
    """The prompt text: the option's value, or all of stdin for `-` (kept verbatim)."""
    if prompt == "-":
        from rnngen.textio import read_stdin_text

        return read_stdin_text("--prompt -")
    return utf8_option("--prompt", prompt or "")


def utf8_option(option: str, text: str) -> str:
    """Text from the command line, which Python gives with surrogates for bytes that were not
    UTF-8: they could never match, nor be printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RnngenError(f"{option} is not valid UTF-8") from None
    return text


def _load(checkpoint: Path | None, device: str):
    from rnngen.checkpoint import latest_checkpoint, load_model
    from rnngen.hardware import resolve_device

    path = checkpoint or latest_checkpoint()
    model, tokenizer, meta = load_model(path, resolve_device(device))
    return path, model, tokenizer, meta


def sampling_precision(precision: str, device) -> str:
    """`auto`: bf16 on CPUs with native bf16, else fp32. A step of one token is a few
    matrix-vector products: on a CPU with bf16 units, bf16 halves the bytes to read (about
    twice as fast); on a GPU the step's time is kernel launches, whatever the precision."""
    from rnngen.hardware import cpu_has_native_bf16, resolve_precision

    if precision == "auto":
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    return resolve_precision(precision, device)


def fit_ngram(
    meta: dict,
    tokenizer,
    order: int,
    reporter: Reporter,
    purpose: str | None = None,
    memory: int | None = None,
):
    """The Kneser-Ney model of exactly the checkpoint's training tokens (cached, as eval's),
    built within `memory` bytes (None: the default budget)."""
    from rnngen.checkpoint_data import build_memory, training_ngram
    from rnngen.provenance import checkpoint_provenance

    provenance = checkpoint_provenance(meta, required=False)
    if provenance is None or "train" not in provenance.splits:
        raise RnngenError("--ngram: the checkpoint does not record its training text")
    if memory is not None:
        from rnngen.ngram.budget import check_memory

        check_memory(memory, tokenizer.vocab_size)
    try:
        ngram = training_ngram(provenance, tokenizer, order, memory=memory)
    except RnngenError:
        raise RnngenError(
            f"--ngram needs the checkpoint's training text, and "
            f"{provenance.splits['train'].source!r} has moved or changed since training "
            "(and its token cache is gone)"
        ) from None
    reporter.log(
        f"{'sampling' if purpose is None else purpose} the order-{order} Kneser-Ney model of "
        f"the checkpoint's {ngram.tokens:,} training tokens "
        + (
            "(cached)"
            if ngram.cached
            else f"(built now: {build_memory(ngram.model.stats, memory)})"
        )
    )
    return ngram


def mixture_of(
    model, tokenizer, meta: dict, order: int, mix_option, reporter: Reporter, memory=None
):
    """(n-gram, λ) for sampling the mixture, λ fixed or fit on the validation split."""
    from rnngen.interpolate import mixture_weight
    from rnngen.provenance import checkpoint_provenance

    ngram = fit_ngram(meta, tokenizer, order, reporter, purpose="mixing in", memory=memory)
    provenance = checkpoint_provenance(meta, required=False)
    device = model.embedding.weight.device
    weight = mixture_weight(mix_option, model, tokenizer, provenance, ngram, device)
    reporter.log(f"mixture: {weight.describe()}")
    return ngram.model, weight.weight


def write(text: str) -> None:
    """Text to stdout at once, as UTF-8 bytes whatever the locale (the tokenizer is lossless)."""
    from rnngen.cli.output import write_stdout

    write_stdout(text)


class TextWriter:
    """Plain text: sample 0 streams live; later samples (computed in the same batch) wait
    in memory until every sample before them is printed, then stream live in their turn.
    Each sample ends its last line; `separator` goes between samples."""

    def __init__(self, config, echo: str, separator: str):
        self.echo, self.separator = echo, separator
        self.waiting = [[] for _ in range(config.num_samples)]  # text not yet printed
        self.ended = [False] * config.num_samples
        self.current = 0  # the sample being printed
        self.line_open = False  # the last character printed is not a newline
        self._print(echo)

    def _print(self, text: str) -> None:
        if text:
            write(text)
            self.line_open = not text.endswith("\n")

    def piece(self, index: int, text: str) -> None:
        if index == self.current:
            self._print(text)
        else:
            self.waiting[index].append(text)

    def done(self, event) -> None:
        self.ended[event.index] = True
        while self.current < len(self.ended) and self.ended[self.current]:
            if self.line_open:
                self._print("\n")
            self.current += 1
            if self.current < len(self.ended):
                self._print(self.separator + self.echo + "".join(self.waiting[self.current]))
                self.waiting[self.current] = []


class JsonWriter:
    """One JSON object a line per sample, in index order, each as soon as it can be."""

    def __init__(self, config, prompt: str):
        self.config, self.prompt = config, prompt
        self.ready: dict[int, dict] = {}
        self.next = 0

    def piece(self, index: int, text: str) -> None:
        pass  # the whole text comes with the sample's Done event

    def done(self, event) -> None:
        self.ready[event.index] = {
            "index": event.index, "prompt": self.prompt, "text": event.text,
            "tokens": event.tokens, "seed": self.config.seed_of(event.index),
            "finish": event.reason, "dropped_bytes": event.dropped_bytes,
        }  # fmt: skip
        while self.next in self.ready:
            write(json.dumps(self.ready.pop(self.next), ensure_ascii=False) + "\n")
            self.next += 1
