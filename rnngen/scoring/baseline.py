"""A checkpoint's data and n-gram baseline, looked up once per command.

eval, score, gradients and sample --ngram/--mix all need the same things of a checkpoint:
its held-out text, the ids of its splits, the Kneser-Ney n-gram of its training tokens (for
one or more orders) and the RNN + n-gram mixture weight. `CheckpointData` finds each once:
the tokenized directory or token cache is opened once, the training ids are read once and
hashed once (the digest copied per order: the same cache keys as `checkpoint_data.ngram_key`,
so existing caches stay valid), and the validation ids are found once.

`ngram_baseline` is the one assembly of the n-gram and its mixture with the RNN that score,
sample and eval use: the n-gram of an order, and the mixture weight (fixed or fit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.corpus.provenance import Provenance
from rnngen.corpus.tokenizer import Tokenizer
from rnngen.errors import RnngenError
from rnngen.ngram import MAX_ORDER
from rnngen.scoring import trained_on as found
from rnngen.scoring.mixture_weight import MixtureWeight, mixture_weight
from rnngen.scoring.trained_on import Text, TrainingNGram, cached_ngram, with_context


def check_order(order: int, option: str = "--ngram-order") -> int:
    """The n-gram order range, checked in one place for every command and call."""
    if not 1 <= order <= MAX_ORDER:
        raise RnngenError(f"{option} must be between 1 and {MAX_ORDER}, got {order}")
    return order


def memory_budget(memory: int | str | None, vocab_size: int = 0) -> int | None:
    """--ngram-memory in bytes (a number, or a size such as "2G" or "25%"; None: the default
    budget), checked against the least an n-gram of `vocab_size` needs (0: any vocabulary)."""
    if memory is None:
        return None
    from rnngen.ngram.budget import check_memory, parse_memory

    return check_memory(parse_memory(memory) if isinstance(memory, str) else memory, vocab_size)


class CheckpointData:
    """What a checkpoint was trained and held out on, and its n-grams, each found once.

    `train` is --train FILE (the n-gram's tokens when the corpus moved); `memory` the bytes
    an n-gram build may use (None: the default budget)."""

    def __init__(
        self,
        provenance: Provenance | None,
        tokenizer: Tokenizer,
        *,
        train: Path | None = None,
        memory: int | None = None,
    ):
        self.provenance, self.tokenizer, self.train, self.memory = (
            provenance,
            tokenizer,
            train,
            memory,
        )
        self._corpora: dict[Path, object] = {}  # tokenized directories, loaded (or None)
        self._stored: dict[str, np.ndarray | None] = {}
        self._heldout: dict[Path | None, Text] = {}
        self._training: tuple[np.ndarray, str] | None = None
        self._digest = None  # sha256 of the training ids, before the order is added
        self._ngrams: dict[int, TrainingNGram] = {}
        self._splits: dict[str, np.ndarray | None] = {}

    def stored_ids(self, provenance, tokenizer, split: str) -> np.ndarray | None:
        """checkpoint_data.stored_ids, each directory loaded once (same signature)."""
        if split not in self._stored:
            self._stored[split] = found.stored_ids(provenance, tokenizer, split, self._loaded)
        return self._stored[split]

    def _loaded(self, directory: Path):
        if directory not in self._corpora:
            self._corpora[directory] = found.load_stored(directory)
        return self._corpora[directory]

    def heldout_text(self, data: Path | None = None) -> Text:
        """What eval scores: `data`, else the checkpoint's held-out split."""
        if data not in self._heldout:
            self._heldout[data] = found.heldout_text(
                self.provenance, self.tokenizer, data, self.stored_ids
            )
        return self._heldout[data]

    def heldout_ids(self, data: Path | None, purpose: str) -> tuple[np.ndarray, Text]:
        """The held-out text's ids after one line end (every token a target), and the text;
        an error saying there is nothing to `purpose` when it is empty."""
        heldout = self.heldout_text(data)
        ids = with_context(self.tokenizer, self.tokenizer.encode_array(heldout.text))
        if len(ids) < 2:
            raise RnngenError(f"{heldout.source} is empty: nothing to {purpose}")
        return ids, heldout  # (1 + targets,)

    def training_ids(self) -> tuple[np.ndarray, str]:
        """The n-gram's training tokens and where they came from, read once."""
        if self._training is None:
            self._training = found.training_ids(
                self.provenance, self.tokenizer, self.train, self.stored_ids
            )
        return self._training

    def ngram(self, order: int) -> TrainingNGram:
        """The cached Kneser-Ney model of the training tokens, of this order."""
        if order not in self._ngrams:
            ids, source = self.training_ids()
            if self._digest is None:
                self._digest = found.ids_digest(ids)
            tokenizer = self.tokenizer
            key = found.key_of(self._digest, order, tokenizer.vocab_size, tokenizer.sha256)
            started = time.perf_counter()
            model, cached = cached_ngram(ids, order, tokenizer.vocab_size, tokenizer.sha256,
                                         memory=self.memory, key=key)  # fmt: skip
            seconds = time.perf_counter() - started
            self._ngrams[order] = TrainingNGram(model, len(ids), source, cached, seconds, key)
        return self._ngrams[order]

    def split_ids(self, split: str) -> np.ndarray | None:
        """The ids of one of the checkpoint's splits (None when it has none, or it is gone)."""
        if self.provenance is None:
            return None
        if split not in self._splits:
            self._splits[split] = found.split_ids(
                self.provenance, self.tokenizer, split, self.stored_ids
            )
        return self._splits[split]

    def mixture(self, option: float | str, model, ngram: TrainingNGram, device,
                precision: str = "fp32", scored=None) -> MixtureWeight:  # fmt: skip
        """The mixture weight: `option` fixed, or "fit" on the validation split (cached)."""
        valid = lambda: self.split_ids("valid")  # noqa: E731
        return mixture_weight(option, model, self.tokenizer, self.provenance, ngram, device,
                              precision, scored, valid_ids=valid)  # fmt: skip


@dataclass(frozen=True)
class Baseline:
    """The n-gram a command scores or samples with, and its weight in the mixture."""

    ngram: TrainingNGram
    mixture: MixtureWeight | None  # None: the n-gram alone


def ngram_baseline(
    data: CheckpointData,
    order: int,
    *,
    model=None,
    device=None,
    mix: float | str | None = None,
    precision: str = "fp32",
) -> Baseline:
    """The n-gram of the checkpoint's training tokens of `order` and, with `mix` (a weight,
    or "fit" for the one fit on the validation split), its weight beside `model`: what
    score --ngram/--mix and sample --ngram/--mix use, as eval reports them."""
    ngram = data.ngram(check_order(order))
    weight = None
    if mix is not None:
        weight = data.mixture(mix, model, ngram, device, precision)
    return Baseline(ngram, weight)
