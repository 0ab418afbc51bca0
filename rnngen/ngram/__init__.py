"""The n-gram engine: interpolated modified Kneser-Ney over token ids, numpy only (no torch).

Self-contained: nothing here imports torch, sentencepiece or the rest of rnngen except
`rnngen.errors` and the stdlib-only writers (`rnngen.atomic`, `rnngen.corpus.textio`), so the
baseline can be checked against KenLM on its own and used without a model.

    kneser_ney.py  KneserNey (fit, logprobs, distribution, save/load) and MAX_ORDER
    exportable.py  its tables as an ARPA file lists them (ngram_table, ngram_columns)
    estimate.py    the estimator both modes share (counts, discounts, interpolation)
    adjusted.py    its step 2: each order's table, adjusted counts and suffix indices
    interpolation.py  its step 4: each order's interpolated ln p and backoffs
    kenlm.py       KenLM's sentence mode over whitespace words, and the ARPA writer
"""

from rnngen.ngram.estimate import FALLBACK_DISCOUNTS, NGramStats
from rnngen.ngram.kneser_ney import MAX_ORDER, KneserNey

__all__ = ["FALLBACK_DISCOUNTS", "MAX_ORDER", "KneserNey", "NGramStats"]
