"""SampleBatch and Sampler, the one sampling engine: rows that come and go, each at its own
precision, and a row's arithmetic that never depends on the batch."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_text
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.hardware import cpu_has_native_bf16
from rnngen.model import RNNLM
from rnngen.sampling.batch import BLOCK, SampleBatch
from rnngen.sampling.generate import Done, Piece, SampleConfig, sampling_precision
from rnngen.sampling.sampler import Sampler, generate


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(tiny_text(200).split("\n"), TokenizerConfig(kind="bpe"))


@pytest.fixture(scope="module")
def model(tokenizer):
    # 64 wide: wide enough that MKL's fp32 GEMM takes different paths for 1, 2-15 and 16+
    # rows on the machines we measured (a single product over the batch then differs in the
    # last bits between batch sizes).
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, embed_size=64,
                         layers=2, dropout=0.0, embed_dropout=0.0)  # fmt: skip
    return RNNLM(config).eval()


def logits_of_row(model, tokenizer, precision, others: int, position: int, steps: int = 4):
    """Row `position` (seed 7) among `others` other rows: its logits after a few steps."""
    batch = SampleBatch(model, tokenizer, precision)
    seeds = [100 + i for i in range(others)]
    seeds.insert(position, 7)
    ids = batch.add("the cat", seeds, max_tokens=50)
    for _ in range(steps):
        batch.choose()
        batch.advance()
    return batch.logits[batch.ids.index(ids[position])].clone()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_rows_arithmetic_is_the_same_in_any_batch(model, tokenizer, precision):
    alone = logits_of_row(model, tokenizer, precision, 0, 0)
    for others, position in [(1, 1), (4, 2), (BLOCK - 1, 0), (BLOCK, 7), (2 * BLOCK, 2 * BLOCK)]:
        row = logits_of_row(model, tokenizer, precision, others, position)
        assert torch.equal(row, alone), (precision, others, position)


def texts(events) -> dict[int, str]:
    return {e.index: e.text for e in events if isinstance(e, Done)}


def test_sample_i_of_a_batch_is_seed_plus_i_alone(model, tokenizer):
    config = SampleConfig(temperature=1.2, top_p=0.95, max_tokens=40, num_samples=6, seed=3)
    batch = texts(generate(model, tokenizer, "a", config, "fp32"))
    for i in range(6):
        alone = SampleConfig(temperature=1.2, top_p=0.95, max_tokens=40, seed=3 + i)
        assert texts(generate(model, tokenizer, "a", alone, "fp32"))[0] == batch[i]


def test_pieces_add_up_to_the_text(model, tokenizer):
    config = SampleConfig(max_tokens=30, num_samples=3, seed=1, stops=("a ",))
    events = list(generate(model, tokenizer, "the", config))
    for index, text in texts(events).items():
        assert "".join(e.text for e in events if isinstance(e, Piece) and e.index == index) == text


def run_rows(model, tokenizer, rows: list[tuple[dict, int]], drop_after: dict | None = None):
    """Rows with their own options (options, seed) in one batch, added one step apart; a row
    in `drop_after` ({row: steps}) is dropped after that many steps. Texts by row."""
    batch = SampleBatch(model, tokenizer, "fp32")
    out: dict[int, list[str]] = {}
    ids: dict[int, int] = {}
    step = 0
    pending = list(enumerate(rows))
    while pending or len(batch):
        if pending:
            row, (options, seed) = pending.pop(0)
            ids[batch.add("the cat", [seed], **options)[0]] = row
        for event in batch.choose():
            if isinstance(event, Piece):
                out.setdefault(ids[event.index], []).append(event.text)
        for row, after in (drop_after or {}).items():
            if after == step:
                batch.drop([i for i, r in ids.items() if r == row])
        batch.advance()
        step += 1
    return {row: "".join(parts) for row, parts in out.items()}


def test_rows_with_their_own_options_joining_and_leaving(model, tokenizer):
    rows = [({"temperature": 0.7, "max_tokens": 30}, 1),
            ({"temperature": 0, "max_tokens": 20}, 2),
            ({"top_k": 5, "max_tokens": 25}, 3),
            ({"top_p": 0.5, "temperature": 1.5, "max_tokens": 35}, 4),
            ({"top_k": 5, "top_p": 0.8, "max_tokens": 12}, 5)]  # fmt: skip
    together = run_rows(model, tokenizer, rows, drop_after={1: 5})
    for row, (options, seed) in enumerate(rows):
        if row == 1:
            continue  # dropped early
        alone = run_rows(model, tokenizer, [(options, seed)])
        assert together[row] == alone[0], row


def test_add_checks_its_options(model, tokenizer):
    batch = SampleBatch(model, tokenizer)
    with pytest.raises(Exception, match="top-p"):
        batch.add("x", [1], top_p=0)
    with pytest.raises(Exception, match="seed"):
        batch.add("x", [None])
    assert batch.add("x", [None], temperature=0) == [0]
    assert len(batch) == 1


@pytest.fixture(scope="module")
def ngram(tokenizer):
    import numpy as np

    from rnngen.ngram import KneserNey

    return KneserNey.fit(np.array(tokenizer.encode(tiny_text(200))), 3, tokenizer.vocab_size)


def test_an_ngram_alone_samples_without_the_network(model, tokenizer, ngram):
    """`rnngen sample --ngram` runs no network (model None); the same rows beside an RNN's
    (a server's batch) give the same text; mixture rows are reproducible and their own."""
    config = SampleConfig(max_tokens=40, num_samples=3, seed=2, temperature=0.9)
    alone = texts(generate(None, tokenizer, "the", config, ngram=ngram))
    assert texts(generate(model, tokenizer, "the", config, ngram=ngram)) == alone
    mixed = texts(generate(model, tokenizer, "the", config, ngram=ngram, mix=0.3))
    assert texts(generate(model, tokenizer, "the", config, ngram=ngram, mix=0.3)) == mixed
    assert mixed != alone != texts(generate(model, tokenizer, "the", config))
    with pytest.raises(Exception, match="n-gram alone"):
        SampleBatch(None, tokenizer).add("x", [1])


def test_rnn_ngram_and_mixture_rows_in_one_batch(model, tokenizer, ngram):
    batch = SampleBatch(model, tokenizer)
    rows = {"rnn": {}, "ngram": {"ngram": ngram}, "mix": {"ngram": ngram, "mix": 0.5}}
    ids = {name: batch.add("a", [4], max_tokens=30, **kw)[0] for name, kw in rows.items()}
    together: dict[int, str] = {}
    while len(batch):
        together |= texts(batch.choose())
        batch.advance()
    for name, kw in rows.items():
        config = SampleConfig(max_tokens=30, seed=4)
        alone = texts(generate(model, tokenizer, "a", config, **kw))[0]
        assert together[ids[name]] == alone, name


def test_the_precision_rule():
    cpu = torch.device("cpu")
    sampled = "bf16" if cpu_has_native_bf16() else "fp32"
    assert sampling_precision("auto", cpu, 0.0) == "fp32"  # greedy: the reference
    assert sampling_precision("auto", cpu, 0.7) == sampled
    assert sampling_precision("bf16", cpu, 0.0) == "bf16"  # as given
    assert sampling_precision("fp32", cpu, 1.0) == "fp32"
    with pytest.raises(Exception, match="unknown precision"):
        sampling_precision("fp8", cpu, 1.0)


def test_a_sampler_runs_each_row_at_its_precision(model, tokenizer):
    """Greedy rows and sampled rows in one Sampler (a server's batch): each gives the text
    `generate` gives it alone with precision auto (`rnngen sample`'s)."""
    sampler = Sampler(model, tokenizer, "auto")
    rows = [{"temperature": 0.0}, {"temperature": 0.8}, {"temperature": 0.0, "top_k": 3},
            {"temperature": 1.1, "top_p": 0.9}]  # fmt: skip
    ids = [sampler.add("the", [None if r["temperature"] == 0 else 5], max_tokens=30, **r)[0]
           for r in rows]  # fmt: skip
    assert set(sampler.batches) == {"fp32", sampling_precision("auto", sampler.device, 0.8)}
    assert sorted(sampler.ids) == sorted(ids) and len(set(ids)) == 4
    together: dict[int, str] = {}
    while len(sampler):
        together |= texts(sampler.choose())
        sampler.advance()
    for row_id, options in zip(ids, rows, strict=True):
        config = SampleConfig(max_tokens=30, seed=5, **options)
        assert together[row_id] == texts(generate(model, tokenizer, "the", config))[0]
