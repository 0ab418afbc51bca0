"""`rnngen sample`: stream text from a checkpoint (or its n-gram baseline) to stdout."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.config import check_device_options
from rnngen.errors import RnngenError

DEFAULT_LENGTH = 500  # as rnngen.sampling.generate.DEFAULT_LENGTH, which the help cannot import


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
    device: str = args.Device,
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto (fp32 when greedy, --temp 0; else bf16 on CPUs with native bf16, about "
        "twice as fast there, and fp32 elsewhere), fp32, bf16 or fp16 (GPUs).",
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
    machine (and from the Python API and `rnngen serve`); sample i of `-n N --seed S` is the
    sample `--seed S+i` gives alone.
    """
    import rnngen.api as api

    stops = tuple(utf8_option("--stop", s) for s in stop or ())
    separator = utf8_option("--separator", separator)
    check_device_options(device, precision)
    api.memory_budget(ngram_memory)  # a bad size fails before the checkpoint is read
    prompt = read_prompt(prompt)
    reporter = Reporter(quiet)
    lm = api.load(checkpoint, device)
    sampling = api.sample(
        lm, prompt, n=num_samples, temperature=temp, top_k=top_k, top_p=top_p,
        max_tokens=length, max_chars=chars, seed=seed, stop=stops, precision=precision,
        threads=threads, ngram=ngram, ngram_order=ngram_order, ngram_memory=ngram_memory,
        mix=mix, progress=reporter.log,
    )  # fmt: skip
    if not ngram:
        c = lm.config
        reporter.log(
            f"sampling {lm.path} ({c.layers}x{c.cell} {c.hidden_size}, {lm.tokenizer.kind} "
            f"vocab {lm.tokenizer.vocab_size}) on {sampling.device.type} {sampling.precision}"
        )
    if not sampling.greedy:
        reporter.log(f"seed {sampling.seed}")
    echo = "" if no_echo else prompt
    count = sampling.num_samples
    writer = JsonWriter(prompt) if json_output else TextWriter(count, echo, separator)
    try:
        for event in sampling:
            if isinstance(event, api.Piece):
                writer.piece(event.index, event.text)
            elif isinstance(event, api.Done):
                writer.done(event)
    finally:
        sampling.close()


def read_prompt(prompt: str | None) -> str:
    """The prompt text: the option's value, or all of stdin for `-` (kept verbatim)."""
    if prompt == "-":
        import rnngen.api as api

        return api.read_stdin_text("--prompt -")
    return utf8_option("--prompt", prompt or "")


def utf8_option(option: str, text: str) -> str:
    """Text from the command line, which Python gives with surrogates for bytes that were not
    UTF-8: they could never match, nor be printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RnngenError(f"{option} is not valid UTF-8") from None
    return text


def write(text: str) -> None:
    """Text to stdout at once, as UTF-8 bytes whatever the locale (the tokenizer is lossless)."""
    from rnngen.cli.output import write_stdout

    write_stdout(text)


class TextWriter:
    """Plain text: sample 0 streams live; later samples (computed in the same batch) wait
    in memory until every sample before them is printed, then stream live in their turn.
    Each sample ends its last line; `separator` goes between samples."""

    def __init__(self, count: int, echo: str, separator: str):
        self.echo, self.separator = echo, separator
        self.waiting = [[] for _ in range(count)]  # text not yet printed
        self.ended = [False] * count
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

    def __init__(self, prompt: str):
        self.prompt = prompt
        self.ready: dict[int, dict] = {}
        self.next = 0

    def piece(self, index: int, text: str) -> None:
        pass  # the whole text comes with the sample's Done event

    def done(self, event) -> None:
        self.ready[event.index] = {
            "index": event.index, "prompt": self.prompt, "text": event.text,
            "tokens": event.tokens, "seed": event.seed,
            "finish": event.reason, "dropped_bytes": event.dropped_bytes,
        }  # fmt: skip
        while self.next in self.ready:
            write(json.dumps(self.ready.pop(self.next), ensure_ascii=False) + "\n")
            self.next += 1
