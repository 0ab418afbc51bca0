"""Scoring lines one at a time, as `rnngen score` does: with the RNN, the n-gram, their
mixture, and optionally with the RNN adapting from line to line (dynamic evaluation).

Each line is scored as a line of its own: after a line end, its newline included. With
dynamic evaluation the weights carry over from line to line (each line is scored before the
update that learns from it), so a stream of lines is treated as one document; the recurrent
state does not carry, so each line's context is the same as without it.
"""

from __future__ import annotations

from collections.abc import Callable
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
        from rnngen.mixture import mix_logprobs

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
        from rnngen.dynamic import Adaptation

        adaptation = Adaptation(model, device, dynamic)
        return lambda ids: adaptation.read(np.array(context + ids))[0]  # (len(ids),)
    from rnngen.evaluate import sequence_token_logprobs

    return lambda ids: sequence_token_logprobs(model, [ids], context, device)[0]  # (len(ids),)
