"""What eval adds on the built-in corpus: the oracle floor and agreement accuracy by distance.

The oracle is the generating process itself: `synth.analyse_line` gives the exact ln p of
every held-out line, so its row scores the same characters as the models' rows.

Agreement: at every verb whose number is set by a subject k words earlier, does a model give
the right form more probability than the wrong one? Each probe is the line up to the verb,
then the verb form, then the character that follows it in the text; the two probes differ
only in the verb, so comparing their total log-probabilities is fair for any tokenizer
(a BPE piece may span the verb and its neighbours). Models are passed in as functions from
a list of texts to their total log-probabilities, so this module needs neither torch nor
the n-gram code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rnngen.synth.generator import BUCKET_LABELS, AgreementItem, bucket_of, oracle

ScoreTexts = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class AgreementResult:
    """Per distance bucket: number of items and, per model, the share answered right."""

    counts: dict[str, int]
    accuracy: dict[str, dict[str, float]]  # model name -> bucket -> accuracy


def oracle_nats(lines: Sequence[str]) -> tuple[float, int]:
    """Total true nats of the lines, and how many lines the grammar could not analyse."""
    result = oracle(lines)
    return result.nats, result.skipped_lines


def agreement_probes(
    lines: Sequence[str], items: Sequence[tuple[int, AgreementItem]]
) -> tuple[list[str], list[str], list[str]]:
    """(right-form probes, wrong-form probes, distance bucket) for each item."""
    right, wrong, buckets = [], [], []
    for line_index, item in items:
        line = lines[line_index]
        prefix = line[: item.offset]
        after = line[item.offset + len(item.correct) : item.offset + len(item.correct) + 1]
        right.append(prefix + item.correct + after)
        wrong.append(prefix + item.wrong + after)
        buckets.append(bucket_of(item.distance))
    return right, wrong, buckets


def agreement_accuracy(
    lines: Sequence[str],
    items: Sequence[tuple[int, AgreementItem]],
    scorers: dict[str, ScoreTexts],
) -> AgreementResult:
    right, wrong, buckets = agreement_probes(lines, items)
    bucket_array = np.array(buckets)
    counts = {label: int((bucket_array == label).sum()) for label in BUCKET_LABELS}
    accuracy: dict[str, dict[str, float]] = {}
    for name, score in scorers.items():
        correct = score(right) > score(wrong)  # (items,)
        accuracy[name] = {
            label: float(correct[bucket_array == label].mean()) if counts[label] else float("nan")
            for label in BUCKET_LABELS
        }
    return AgreementResult(counts, accuracy)
