"""Linear interpolation of two language models, token by token, and its weight fit by EM.

    p(x | h) = (1 - λ) p_rnn(x | h) + λ p_ngram(x | h)

Mikolov et al. (2011) got their best Penn Treebank results this way: an RNN and a Kneser-Ney
n-gram make different mistakes (the n-gram remembers rare n-grams exactly, the RNN
generalizes and reaches further back), so a mixture beats either alone. Both models already
give a normalized distribution for every target, so the mixture is exact, with no
approximation, and every row of eval's table still scores identical targets.

λ is the weight that maximizes the likelihood of held-out text, found by expectation-
maximization: each target's responsibility r_t = λ p_ngram / p_mix is how much of its
probability the n-gram supplied, and the new λ is their mean. Each iteration never lowers
the likelihood (EM's guarantee for mixture weights), and the objective is concave in λ, so it
converges to the one best λ. Numpy only; works in log space so tiny probabilities stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnngen.errors import RnngenError


@dataclass(frozen=True)
class MixtureFit:
    """The fitted weight of the n-gram, and how the fit went."""

    weight: float  # λ, the n-gram's share
    tokens: int  # targets it was fit on
    iterations: int  # EM steps taken (each one improved the likelihood)
    mean_logprob: list[float]  # mean ln p_mix at the start and after each step: rising


def check_weight(weight: float) -> float:
    """λ must be a probability: one clear error otherwise."""
    if not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
        raise RnngenError(f"the mixture weight must be between 0 and 1, got {weight}")
    return float(weight)


def mix_logprobs(rnn_logp: np.ndarray, ngram_logp: np.ndarray, weight: float) -> np.ndarray:
    """ln((1 - λ) p_rnn + λ p_ngram) per target; λ = 0 and λ = 1 give either side exactly."""
    weight = check_weight(weight)
    rnn_logp, ngram_logp = np.asarray(rnn_logp, float), np.asarray(ngram_logp, float)
    if weight == 0.0:
        return rnn_logp.copy()
    if weight == 1.0:
        return ngram_logp.copy()
    return np.logaddexp(np.log1p(-weight) + rnn_logp, np.log(weight) + ngram_logp)


def fit_weight(
    rnn_logp: np.ndarray,
    ngram_logp: np.ndarray,
    start: float = 0.5,
    tolerance: float = 1e-10,
    max_iterations: int = 1000,
) -> MixtureFit:
    """The λ that maximizes the mean ln p_mix of these targets, by EM (see the module doc).

    Stops when the mean log-likelihood gains less than `tolerance` nats per token. The
    likelihood is concave in λ, so when its slope at 0 or at 1 points out of [0, 1] that end
    is the optimum, taken exactly: EM only creeps towards an end (with one target it stopped
    2e-4 nats short after 1000 steps).
    """
    rnn_logp, ngram_logp = np.asarray(rnn_logp, float), np.asarray(ngram_logp, float)
    if rnn_logp.shape != ngram_logp.shape or rnn_logp.ndim != 1:
        raise ValueError("both models must score the same targets")
    if rnn_logp.size == 0:
        raise RnngenError("no text to fit the mixture weight on")
    weight = float(start)
    mixed = mix_logprobs(rnn_logp, ngram_logp, weight)  # (T,)
    history = [float(mixed.mean())]
    end = _optimal_end(rnn_logp, ngram_logp)
    if end is not None:
        best = float(mix_logprobs(rnn_logp, ngram_logp, end).mean())
        return MixtureFit(end, int(rnn_logp.size), 1, [history[0], max(best, history[0])])
    with np.errstate(divide="ignore"):  # λ may reach 0: log 0 = -inf is what it should be
        for _ in range(max_iterations):
            responsibility = np.exp(np.log(weight) + ngram_logp - mixed)  # (T,) in [0, 1]
            candidate = float(np.clip(responsibility.mean(), 0.0, 1.0))
            candidate_mixed = mix_logprobs(rnn_logp, ngram_logp, candidate)  # (T,)
            likelihood = float(candidate_mixed.mean())
            if likelihood < history[-1]:  # only floating-point rounding can do this: stop
                break
            weight, mixed = candidate, candidate_mixed
            history.append(likelihood)
            if history[-1] - history[-2] < tolerance:
                break
    return MixtureFit(weight, int(rnn_logp.size), len(history) - 1, history)


def _optimal_end(rnn_logp: np.ndarray, ngram_logp: np.ndarray) -> float | None:
    """0 or 1 when the mean log-likelihood is at its maximum there, else None.

    Its slope in λ is mean((p_ngram - p_rnn) / p_mix): at λ = 0 that is mean(p_ngram /
    p_rnn) - 1, at λ = 1 it is 1 - mean(p_rnn / p_ngram)."""
    with np.errstate(over="ignore"):
        if np.mean(np.exp(ngram_logp - rnn_logp)) <= 1.0:
            return 0.0
        if np.mean(np.exp(rnn_logp - ngram_logp)) <= 1.0:
            return 1.0
    return None
