"""A checkpoint scored: log-probabilities on identical targets, and what is built on them.

Every figure eval, score and gradients print comes from here; nothing here trains.

    logprobs.py        Score, model_logprobs: every target's log-probability, bits per char
    trained_on.py      what a checkpoint was trained and held out on; its cached n-gram
    mixture.py         the RNN + n-gram mixture, token by token, and its weight fit by EM
    mixture_weight.py  a checkpoint's mixture weight, fit once on validation text and cached
    dynamic.py         dynamic evaluation (Krause et al.): the model adapts as it reads
    lines.py           scoring lines one at a time (rnngen score)
    report.py          ComparisonReport: the RNN beside the n-gram on the same targets (eval)
    gradients.py       how far back the gradient reaches (rnngen gradients)
"""

from rnngen.faces import lazy_names

# name -> the module of this package that defines it, imported on first use (rnngen.faces).
_FACE = {
    "Score": "logprobs",
    "model_logprobs": "logprobs",
    "training_ngram": "trained_on",
    "heldout_text": "trained_on",
    "mix_logprobs": "mixture",
    "MixtureWeight": "mixture_weight",
    "mixture_weight": "mixture_weight",
    "DynamicConfig": "dynamic",
    "LineScore": "lines",
    "line_scorer": "lines",
    "ComparisonReport": "report",
    "compare_model": "report",
    "gradient_flow": "gradients",
}
__all__ = sorted(_FACE)

__getattr__ = lazy_names(__name__, _FACE)
