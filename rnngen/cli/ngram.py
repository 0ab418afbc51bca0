"""`rnngen ngram`: the Kneser-Ney baseline on its own (and KenLM's sentence mode)."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter


@command()
def ngram(
    train: Path = typer.Argument(..., help="Training text."),
    test: Path = typer.Option(..., "--test", help="Text to compute perplexity on."),
    order: int = typer.Option(5, "--order", help="n-gram order, 1 to 9."),
    words: bool = typer.Option(
        False, "--words", help="KenLM's sentence mode: whitespace words, <s> ... </s> per line."
    ),
    kind: str = args.Kind,
    vocab_size: int | None = args.VocabSize,
    arpa: Path = typer.Option(None, "--arpa", help="Also write the model in ARPA format."),
    ngram_memory: str = args.NgramMemory,
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Build an interpolated modified Kneser-Ney n-gram on TRAIN and report perplexity on TEST.

    Without --words, the tokens are those of a tokenizer trained on TRAIN (--kind,
    --vocab-size, as in tokenize), the context crosses line ends, and there are no OOVs.
    With --words, it computes what KenLM's lmplz and query do, to their numbers.
    """
    import rnngen.api as api
    from rnngen.cli.output import print_json

    reporter = Reporter(quiet)
    report = api.ngram(train, test, order=order, words=words, kind=kind, vocab_size=vocab_size,
                       arpa=arpa, ngram_memory=ngram_memory, progress=reporter.log)  # fmt: skip
    if report.spilled():
        reporter.log(f"the build spilled {report.spilled()} to disk")
    for stats_order in report.fallback_orders:
        reporter.warn(
            f"order {stats_order}: too little data to estimate discounts; used (0.5, 1, 1.5)"
        )
    if arpa:
        reporter.log(f"wrote {arpa}")
    if json_output:
        print_json(report.to_json())
        return
    _print(report.to_json())


def _print(report: dict) -> None:
    from rnngen.cli.output import print_table

    rows = [
        ["tokens", report["tokens"]],
        ["OOVs", report["oovs"]],
        ["perplexity (incl. OOVs)", report["ppl_including_oov"]],
        ["perplexity (excl. OOVs)", report["ppl_excluding_oov"]],
    ]
    if "bits_per_char" in report:
        rows.append(["bits per character", report["bits_per_char"]])
    rows += [["build seconds", report["build_seconds"]]]
    rows += [[f"{k}-grams", n] for k, n in report["ngram_counts"].items()]
    for k, d in report["discounts"].items():
        rows.append([f"discounts order {k}", ", ".join(f"{n} {v:.4f}" for n, v in d.items())])
    print_table(
        f"Kneser-Ney {report['order']}-gram ({report['mode']})", ["", "value"], rows, numeric={1}
    )
