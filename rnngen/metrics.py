"""The figures every report shows, written once (stdlib only, no torch).

Natural-log loss per token; perplexity = exp(loss); bits per character and per byte divide the
*total* nats by ln 2 times the characters or bytes of the scored text, so that models with
different tokenizers compare (DESIGN.md, Metrics). Training reports the same bits from a mean
loss and the characters per token of its validation text: bits(loss, chars_per_token).
"""

from __future__ import annotations

import math

LN2 = math.log(2)
MAX_LOSS = 700.0  # exp(709.8) overflows a float: a diverged model reports exp(700), not a crash


def mean_loss(nats: float, tokens: int) -> float:
    """Nats per token (0 tokens count as 1, so an empty text is 0, not a division error)."""
    return nats / max(tokens, 1)


def perplexity(loss: float) -> float:
    """exp(nats per token), capped so that a diverged model still gives a number."""
    return math.exp(min(loss, MAX_LOSS))


def bits(nats: float, units: float) -> float:
    """Nats as bits per unit: per character or per byte of the text (or, from a mean loss, per
    token's share of characters). No units count as one, as for `mean_loss`."""
    return nats / (LN2 * (units if units > 0 else 1))
