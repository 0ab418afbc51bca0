"""The RNN + n-gram mixture of a checkpoint: its weight, fit once on validation text.

λ (the n-gram's share, see mixture.py) is fit by EM on the checkpoint's validation split: the
text training held out to pick the best model, never the test split eval reports on. It
depends on both models, so it is cached under the n-gram's cache key and a digest of the
RNN's weights: eval fits it once, and score and sample reuse it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from rnngen.atomic import write_text
from rnngen.corpus.cache import cache_root
from rnngen.corpus.provenance import Provenance
from rnngen.corpus.textio import make_dir
from rnngen.errors import RnngenError, parse_json
from rnngen.scoring.mixture import check_weight, fit_weight
from rnngen.scoring.trained_on import TrainingNGram, split_ids, with_context

FIT = "fit"  # the option value that asks for the fitted weight


@dataclass(frozen=True)
class MixtureWeight:
    """λ, and where it came from (what eval's table and --json say about it)."""

    weight: float
    fit_split: str | None  # "valid" when fitted; None when the user fixed it
    fit_tokens: int
    fit_ids_sha256: str | None  # of the ids it was fit on: tells when eval scores that text
    cached: bool

    def describe(self) -> str:
        if self.fit_split is None:
            return f"λ = {self.weight:.4f} (fixed)"
        return (
            f"λ = {self.weight:.4f}, fit on the {self.fit_split} split ({self.fit_tokens:,} tokens)"
        )

    def as_dict(self) -> dict:
        return {
            "lambda": self.weight,
            "fit_on": f"{self.fit_split} split" if self.fit_split else None,
            "fit_tokens": self.fit_tokens,
        }


def parse_mix(value: str) -> float | str:
    """`--mix fit` or `--mix LAMBDA` (a number in [0, 1])."""
    if value.strip().lower() == FIT:
        return FIT
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not 0.0 <= weight <= 1.0:
        raise RnngenError(f"--mix takes 'fit' or a weight between 0 and 1, got {value!r}")
    return weight


def ids_sha256(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


def model_digest(model) -> str:
    """A digest of the RNN's weights (names, shapes and values), for the cache key."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def mixture_weight(
    option: float | str,
    model,
    tokenizer,
    provenance: Provenance | None,
    ngram: TrainingNGram,
    device,
    precision: str = "fp32",
    scored: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    valid_ids=None,
) -> MixtureWeight:
    """A fixed λ as given, or the one fit on the validation split (cached).

    `scored` = (ids, rnn log-probs, n-gram log-probs) of text the caller has scored already:
    when that text is the validation split (eval of a checkpoint without a test split), the
    fit reuses the scores instead of running the RNN over the same text again. `valid_ids`:
    a function giving the validation ids (baseline.CheckpointData finds them once)."""
    if option != FIT:
        return MixtureWeight(check_weight(option), None, 0, None, False)
    path = cache_root() / "mixture" / f"{ngram.key}-{model_digest(model)}.json"
    cached = _read_cached(path)
    if cached is not None:
        return cached
    from rnngen.scoring.logprobs import model_logprobs

    if valid_ids is not None:
        ids = valid_ids()
    else:
        ids = split_ids(provenance, tokenizer, "valid") if provenance is not None else None
    if ids is None or len(ids) == 0:
        raise RnngenError(
            "the checkpoint has no validation text to fit the mixture weight on; "
            "give --mix LAMBDA (a weight between 0 and 1)"
        )
    ids = with_context(tokenizer, np.asarray(ids))  # (1 + targets,)
    if scored is not None and np.array_equal(scored[0], ids):
        rnn_logp, ngram_logp = scored[1], scored[2]  # (targets,) each
    else:
        rnn_logp = model_logprobs(model, ids, device, precision)  # (targets,)
        ngram_logp = ngram.model.logprobs(ids)  # (targets,)
    fit = fit_weight(rnn_logp, ngram_logp)
    result = MixtureWeight(fit.weight, "valid", fit.tokens, ids_sha256(ids), False)
    # Like the n-gram cache, this only saves time: failing to write it costs a refit.
    with contextlib.suppress(RnngenError):
        make_dir(path.parent, "mixture cache")
        record = {"lambda": fit.weight, "split": "valid", "tokens": fit.tokens,
                  "ids_sha256": result.fit_ids_sha256, "iterations": fit.iterations}  # fmt: skip
        write_text(path, json.dumps(record) + "\n")
    return result


def _read_cached(path) -> MixtureWeight | None:
    """The weight eval fit and cached, or None when there is none or the entry is damaged
    in any way (not JSON, a field missing, a weight outside [0, 1]): then it is fit again
    and the entry rewritten, as a damaged token or n-gram cache entry is rebuilt."""
    try:
        stored = parse_json(path.read_text(encoding="utf-8"), str(path), object_only=True)
        weight, split = stored["lambda"], stored["split"]
        tokens, digest = stored["tokens"], stored["ids_sha256"]
    except (OSError, ValueError, KeyError, RnngenError):
        return None
    if not (
        isinstance(weight, int | float)
        and not isinstance(weight, bool)
        and 0.0 <= weight <= 1.0
        and split == "valid"
        and isinstance(tokens, int)
        and not isinstance(tokens, bool)
        and tokens > 0
        and isinstance(digest, str)
    ):
        return None
    return MixtureWeight(float(weight), split, tokens, digest, True)
