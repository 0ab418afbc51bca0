"""The table behind `rnngen eval`: the library's ComparisonReport, rendered."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rnngen.cli.output import print_json, print_table


@dataclass(frozen=True)
class EvalOptions:
    """What `rnngen eval` was asked for, checked."""

    data: Path | None
    train: Path | None
    ngram_order: int
    ngram_memory: int | None  # bytes for building the n-gram; None: the default budget
    mix: float | str | None  # a weight, "fit", or None for no mixture row
    dynamic: object | None  # a DynamicConfig, or None
    json_output: bool


def compare(reporter, path: Path, model, tokenizer, meta, device, options: EvalOptions):
    from rnngen.provenance import checkpoint_provenance
    from rnngen.report import compare_model

    report = compare_model(
        model,
        tokenizer,
        checkpoint_provenance(meta, required=False),
        device,
        checkpoint=str(path),
        data=options.data,
        train=options.train,
        ngram_order=options.ngram_order,
        ngram_memory=options.ngram_memory,
        mix=options.mix,
        dynamic=options.dynamic,
        progress=reporter.log,
    )
    if report.ngram.fallback_orders:
        reporter.warn(
            f"orders {report.ngram.fallback_orders} had too little data to estimate discounts; "
            "used KenLM's fallback (0.5, 1, 1.5)"
        )
    _leave_for_plot(reporter, path, report)
    if options.json_output:
        print_json(report.to_json())
        return
    rows = report.rows
    title = (
        f"{path.name} on {report.data}: {report.targets:,} tokens, {report.characters:,} characters"
    )
    if report.mixture is not None:
        title += f"\nmixture: {report.mixture.describe()}"
        if report.mixture_on_fit_text:
            title += "; that is the text scored here, so the mixture rows are optimistic"
    print_table(
        title,
        ["model", "tokens", "nats/token", "perplexity", "bits/char", "bits/byte"],
        [[r.name, r.tokens, r.loss, r.ppl, r.bits_per_char, r.bits_per_byte] for r in rows],
        numeric={1, 2, 3, 4, 5},
    )
    agreement = report.agreement
    if agreement is not None:
        names = list(agreement.accuracy)
        print_table(
            "subject-verb agreement: share of verbs where the right form is more probable",
            ["distance (words)", "items", *names],
            [
                [label, count, *[_percent(agreement.accuracy[n][label]) for n in names]]
                for label, count in agreement.items.items()
            ],
            numeric=set(range(1, 2 + len(names))),
        )


def _leave_for_plot(reporter, path: Path, report) -> None:
    """Keep the report beside the checkpoint as NAME.eval.json (atomically), so that `rnngen
    plot` draws the n-gram and oracle lines without computing them again. Only for the
    checkpoint's own held-out text: another --data would give the plot the wrong lines. A
    read-only checkpoint folder costs the plot its lines, not the eval its result."""
    import json

    from rnngen.atomic import write_text
    from rnngen.errors import RnngenError

    if not report.data.startswith("held-out "):
        return
    target = path.with_name(path.name.removesuffix(".safetensors") + ".eval.json")
    try:
        write_text(target, json.dumps(report.to_json()) + "\n")
    except RnngenError as e:
        reporter.warn(f"{e}; plot will lack the n-gram line")


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"
