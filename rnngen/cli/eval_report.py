"""The table behind `rnngen eval`: the library's ComparisonReport, rendered."""

from __future__ import annotations

import math
from pathlib import Path

from rnngen.cli.output import print_json, print_table


def render(reporter, report, json_output: bool) -> None:
    """The eval table (or its JSON) on stdout, its warnings on stderr; the report kept
    beside the checkpoint for `rnngen plot`."""
    from rnngen.errors import RnngenError

    if report.ngram.fallback_orders:
        reporter.warn(
            f"orders {report.ngram.fallback_orders} had too little data to estimate discounts; "
            "used KenLM's fallback (0.5, 1, 1.5)"
        )
    try:
        report.keep_for_plot()
    except RnngenError as e:
        reporter.warn(f"{e}; plot will lack the n-gram line")
    if json_output:
        print_json(report.to_json())
        return
    rows = report.rows
    name, targets, characters = Path(report.checkpoint).name, report.targets, report.characters
    title = f"{name} on {report.data}: {targets:,} tokens, {characters:,} characters"
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


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"
