"""Scoring lines one at a time, as `rnngen score` does: with the RNN, the n-gram, their
mixture, and optionally with the RNN adapting from line to line (dynamic evaluation).

Each line is scored as a line of its own: after a line end, its newline included. With
dynamic evaluation the weights carry over from line to line (each line is scored before the
update that learns from it), so a stream of lines is treated as one document; the recurrent
state does not carry, so each line's context is the same as without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from rnngen import metrics


@dataclass(frozen=True)
class LineScore:
    """One line scored as a line of its own (after a line end), its newline included."""

    text: str  # without its newline
    tokens: int
    logprob: float  # total ln p of its tokens
    ppl: float | None  # exp(-logprob / tokens); None for a line of no tokens


def line_scorer(
    tokenizer,
    device=None,
    model=None,
    ngram=None,
    weight: float | None = None,
    dynamic=None,
) -> Callable[[str], LineScore]:
    """A function from a line to its LineScore.

    model alone: the RNN. ngram alone: the n-gram. Both with `weight` λ: the mixture
    (1 - λ) p_rnn + λ p_ngram, token by token. `dynamic` (a DynamicConfig) makes the RNN
    adapt as it reads.
    """
    context = [tokenizer.newline_id]
    rnn = _rnn_tokens(model, context, device, dynamic) if model is not None else None

    def ngram_tokens(ids: list[int]) -> np.ndarray:
        return ngram.logprobs(np.array(context + ids))  # (len(ids),)

    if rnn is not None and ngram is not None:
        from rnngen.scoring.mixture import mix_logprobs

        def per_token(ids: list[int]) -> np.ndarray:
            return mix_logprobs(rnn(ids), ngram_tokens(ids), weight)
    else:
        per_token = rnn or ngram_tokens

    def score(line: str) -> LineScore:
        ids = tokenizer.encode(line)
        total = float(per_token(ids).sum()) if ids else 0.0
        ppl = metrics.perplexity(-total / len(ids)) if ids else None
        return LineScore(line.rstrip("\n"), len(ids), total, ppl)

    return score


def _rnn_tokens(model, context: list[int], device, dynamic) -> Callable[[list[int]], np.ndarray]:
    if dynamic is not None:
        from rnngen.scoring.dynamic import Adaptation

        adaptation = Adaptation(model, device, dynamic)
        return lambda ids: adaptation.read(np.array(context + ids))[0]  # (len(ids),)
    from rnngen.scoring.logprobs import sequence_token_logprobs

    return lambda ids: sequence_token_logprobs(model, [ids], context, device)[0]  # (len(ids),)


def line_options(ngram: bool, mix, dynamic):
    """score's options checked together: --ngram alone, or the RNN with --mix and/or
    --dynamic. Returns the mixture option parsed ("fit", a weight, or None) and `dynamic`."""
    from rnngen.errors import contradiction
    from rnngen.scoring.mixture_weight import parse_mix

    for other, given in (("--mix", mix is not None), ("--dynamic", bool(dynamic))):
        if ngram and given:
            raise contradiction("--ngram", other, "--ngram scores with the n-gram alone")
    return (parse_mix(str(mix)) if mix is not None else None), dynamic


def scoring_function(model, tokenizer, provenance, device, *, ngram: bool = False,
                     order: int = 5, mix=None, dynamic=None, memory: int | None = None,
                     train=None) -> Callable[[str], LineScore]:  # fmt: skip
    """score's line_scorer for a checkpoint: the RNN, the n-gram of its training tokens
    (`ngram`), or their mixture (`mix`), the RNN adapting or not (`dynamic`)."""
    baseline = None
    if ngram or mix is not None:
        from rnngen.scoring.baseline import CheckpointData, ngram_baseline

        data = CheckpointData(provenance, tokenizer, train=train, memory=memory)
        baseline = ngram_baseline(data, order, model=model, device=device, mix=mix)
    return line_scorer(
        tokenizer,
        device,
        model=None if ngram else model,
        ngram=baseline.ngram.model if baseline is not None else None,
        weight=baseline.mixture.weight if baseline and baseline.mixture else None,
        dynamic=dynamic,
    )


def checked_lines(lines) -> Iterator[str]:
    """`lines` (any iterable of str, read as it goes), each checked as it comes; one str
    alone is refused rather than scored character by character."""
    from rnngen.arguments import check
    from rnngen.errors import RnngenError

    if isinstance(lines, str | bytes):
        raise RnngenError(
            f"lines must be an iterable of str such as a list, not a {type(lines).__name__}; "
            "give [text] for one"
        )
    try:
        iterator = iter(lines)
    except TypeError:
        raise RnngenError(f"lines must be an iterable of str, not {type(lines).__name__}") from None
    return (check(f"lines[{i}]", line, "str") for i, line in enumerate(iterator))
