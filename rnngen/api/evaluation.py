"""The eval table as data: `compare` (what `rnngen eval` computes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rnngen.api.language_model import LanguageModel, load
from rnngen.arguments import checked
from rnngen.errors import RnngenError

if TYPE_CHECKING:
    from rnngen.dynamic import DynamicConfig


@checked()
def compare(
    model_or_checkpoint: LanguageModel | str | Path | None = None,
    data: str | Path | None = None,
    *,
    ngram_order: int = 5,
    ngram_memory: int | str | None = None,
    train: str | Path | None = None,
    device: str = "auto",
    mix: float | str | None = "fit",
    dynamic: DynamicConfig | bool | None = None,
):
    """The eval table as data (a ComparisonReport): the model, a Kneser-Ney n-gram of its
    training tokens and a unigram on the same targets of `data` (default: the held-out split);
    their mixture (`mix`: "fit" for the weight fit on the validation split, a weight in [0, 1],
    or None for no mixture row); with `dynamic` (a `rnngen.dynamic.DynamicConfig`, or True for
    its defaults) the model adapting as it reads; on `rnngen synth` text also the oracle and
    agreement accuracy. `ngram_memory` bounds the n-gram's build: bytes, or a size such as
    "2G" or "25%" (default rnngen.ngram.budget.default_memory(); the model is the same
    whatever it is)."""
    from rnngen.interpolate import parse_mix
    from rnngen.ngram import MAX_ORDER
    from rnngen.ngram.budget import parse_memory
    from rnngen.report import compare_model

    if not 1 <= ngram_order <= MAX_ORDER:
        raise RnngenError(f"ngram_order must be between 1 and {MAX_ORDER}, got {ngram_order}")
    if isinstance(dynamic, bool):
        from rnngen.dynamic import DynamicConfig

        dynamic = DynamicConfig() if dynamic else None
    mix = parse_mix(str(mix)) if mix is not None else None
    lm = model_or_checkpoint
    if not isinstance(lm, LanguageModel):
        lm = load(lm, device)
    return compare_model(
        lm.model, lm.tokenizer, lm.provenance, lm.device, checkpoint=str(lm.path),
        data=Path(data) if data is not None else None,
        train=Path(train) if train is not None else None, ngram_order=ngram_order,
        ngram_memory=parse_memory(ngram_memory, "ngram_memory")
        if isinstance(ngram_memory, str) else ngram_memory,
        mix=mix, dynamic=dynamic,
    )  # fmt: skip
