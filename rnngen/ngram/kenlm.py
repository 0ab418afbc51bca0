"""KenLM compatibility for rnngen.ngram: sentence mode over whitespace words, and ARPA export.

Sentence mode exists to check rnngen's Kneser-Ney against KenLM's own numbers (`lmplz` to build,
`query` to score; see shared/reference/kenlm-semantics.md): one sentence per line, words split on
space, tab and CR, `<s>` as context only, one `</s>` predicted per line, and unseen test words
scored as `<unk>`. ARPA export lets KenLM, SRILM and other tools read any rnngen n-gram.

Word ids: 0 is `<unk>`, 1 is `</s>`, then training words in order of first appearance; the
model's vocab_size is their number, and the id vocab_size is `<s>` (the model's BOS). The word
list `fit_sentences` returns has vocab_size + 1 entries, `<s>` last, so it is also the
`id_to_string` that `write_arpa` wants.

API
---
    fit_sentences(lines, order) -> (KneserNey, words)
    score_sentences(model, words, lines) -> SentenceScore
    write_arpa(model, path_or_file, id_to_string)
Lines are one sentence per item, a trailing "\\n" stripped; read files with
`open(path, encoding="utf-8", newline="\\n")` so that only "\\n" ends a line, as in KenLM.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from rnngen.atomic import remove_stale_temporaries
from rnngen.corpus.textio import output_file
from rnngen.errors import RnngenError
from rnngen.ngram.arpa import arpa_chunks
from rnngen.ngram.counting import TokenStream
from rnngen.ngram.external import Plan
from rnngen.ngram.kneser_ney import KneserNey, _check_order

UNK, EOS, BOS = "<unk>", "</s>", "<s>"
RESERVED = frozenset((UNK, EOS, BOS))  # KenLM refuses them in training text


@dataclass(frozen=True)
class SentenceScore:
    """Totals as KenLM's `query` reports them; OOVs are test words never seen in training."""

    sentences: int
    tokens: int  # words, OOVs included, plus one </s> per sentence
    oovs: int
    total_logprob_nats: float  # ln p summed over all tokens
    oov_logprob_nats: float  # the part of it that OOV tokens contribute
    ppl_including_oov: float
    ppl_excluding_oov: float


def split_words(line: str) -> list[str]:
    """The words of one line as KenLM sees them: split on space, tab and CR, empties dropped."""
    return [
        w for w in line.removesuffix("\n").replace("\t", " ").replace("\r", " ").split(" ") if w
    ]


def fit_sentences(
    lines: Iterable[str], order: int, *, memory: int | Plan | None = None, scratch_dir=None
) -> tuple[KneserNey, list[str]]:
    """Estimate a KenLM-identical model from training sentences; returns it and its word list.

    memory and scratch_dir: the estimator's budget and where it spills, as in KneserNey.fit.
    """
    _check_order(order)
    index = {UNK: 0, EOS: 1}  # word -> id, growing as words first appear
    ids = _encode_lines(lines, index, grow=True)  # (words + 2 * lines,)
    vocab_size = len(index)
    ids[ids < 0] = vocab_size  # <s>, now that the vocabulary size is known
    stream = TokenStream(ids, vocab_size, vocab_size + 1, leading_bos=False, what="word ids")
    model = KneserNey._estimate(stream, order, vocab_size, True, memory, scratch_dir, None)
    return model, [*index, BOS]


def score_sentences(model: KneserNey, words: Sequence[str], lines: Iterable[str]) -> SentenceScore:
    """Score test sentences as KenLM's `query` does: each starts after <s> and ends with </s>."""
    index = {word: i for i, word in enumerate(words[: model.vocab_size])}
    stream = _encode_lines(lines, index, grow=False)  # (T,)
    is_bos = stream < 0
    stream[is_bos] = model.bos
    logp = model.logprobs(stream)  # (T-1,) 0.0 where the target is <s>
    targets = stream[1:]
    is_oov = targets == 0
    tokens = int(np.count_nonzero(targets != model.bos))
    oovs = int(np.count_nonzero(is_oov))
    total = float(logp.sum())
    oov_total = float(logp[is_oov].sum())
    return SentenceScore(
        sentences=int(np.count_nonzero(is_bos)),
        tokens=tokens,
        oovs=oovs,
        total_logprob_nats=total,
        oov_logprob_nats=oov_total,
        ppl_including_oov=math.exp(-total / tokens) if tokens else 1.0,
        ppl_excluding_oov=math.exp(-(total - oov_total) / (tokens - oovs))
        if tokens > oovs
        else 1.0,
    )


def _encode_lines(lines: Iterable[str], index: dict[str, int], *, grow: bool) -> np.ndarray:
    """<s> w1 .. wm </s> for every line, as ids, with -1 for <s>; shape (words + 2 lines,).

    Ids are appended to a compact array line by line, so the text's words are never all held as
    Python strings. grow: give new words the next id (training); else they are <unk> = 0.
    """
    stream = array("q")
    for line in lines:
        words = split_words(line)
        stream.append(-1)
        if grow:
            if "<" in line and not RESERVED.isdisjoint(words):
                found = ", ".join(sorted(RESERVED.intersection(words)))
                raise RnngenError(f"the training text contains the reserved word {found}")
            stream.extend([index.setdefault(w, len(index)) for w in words])
        else:
            stream.extend([index.get(w, 0) for w in words])
        stream.append(1)  # </s>
    return np.frombuffer(stream, dtype=np.int64) if stream else np.zeros(0, dtype=np.int64)


def write_arpa(
    model: KneserNey,
    path_or_file: str | os.PathLike | TextIO,
    id_to_string: Sequence[str] | Callable[[int], str],
) -> None:
    """Write model in ARPA format (log10 probabilities and backoffs), as KenLM's lmplz does.

    For interpolated Kneser-Ney, the probability listed for an n-gram is its interpolated one and
    the backoff of a context h is gamma(h), so a backoff reader computes the same p(x | h).
    id_to_string names every id < vocab_size (and <s> = vocab_size in sentence mode); names
    must be distinct, non-empty and free of whitespace (escape such tokens first). KenLM
    refuses files without <s> and </s>, so a stream-mode model gets them, and <unk>, as extra
    unigrams with log10 p = -99 when its names lack them. A path is written atomically
    (temporary file, then os.replace), in UTF-8; rnngen.ngram.arpa formats the lines a chunk
    at a time with numpy, since one at a time in Python took longer than the whole build.
    """
    n_names = model.vocab_size + int(model.stats.sentence_mode)
    names = (
        [id_to_string(i) for i in range(n_names)]
        if callable(id_to_string)
        else list(id_to_string[:n_names])
    )
    bad = [name for name in names if not name or len(name.split()) != 1 or name != name.strip()]
    if len(names) < n_names or bad or len(set(names)) < len(names):
        raise RnngenError(
            "ARPA needs a distinct, non-empty name without whitespace for every id"
            + (f"; bad: {bad[:3]!r}" if bad else "")
        )
    known = set(names)
    extra = [] if model.stats.sentence_mode else [m for m in (BOS, EOS, UNK) if m not in known]
    tables = [model.ngram_columns(k) for k in range(1, model.order + 1)]
    if isinstance(path_or_file, (str, os.PathLike)):
        remove_stale_temporaries(os.path.dirname(os.fspath(path_or_file)) or ".")
        with output_file(path_or_file, "wb") as f:
            for chunk in arpa_chunks(names, extra, tables):
                f.write(chunk)
    else:
        for chunk in arpa_chunks(names, extra, tables):  # each ends a line: decodes whole
            path_or_file.write(chunk.decode("utf-8"))
