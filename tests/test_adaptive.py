"""The adaptive softmax: exact normalized log-probabilities, its cut-offs, and every command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, tiny_text
from rnngen.adaptive import (
    ADAPTIVE_FROM_VOCAB,
    choose_cutoffs,
    frequency_order,
    output_layer,
)
from rnngen.checkpoint import load_model, save_model
from rnngen.config import ModelConfig
from rnngen.errors import RnngenError
from rnngen.model import RNNLM


def adaptive_model(vocab=300, cutoffs=(40, 120), tie=True, hidden=24, embed=64, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab, hidden_size=hidden, embed_size=embed, layers=2, tie=tie,
        softmax="adaptive", cutoffs=cutoffs, dropout=0.0,
    )  # fmt: skip
    model = RNNLM(config)
    ids = np.random.default_rng(seed).zipf(1.4, 20_000) % vocab
    model.adaptive.set_order(frequency_order(ids, vocab))
    return model.eval()


@settings(max_examples=25, deadline=None)
@given(
    vocab=st.integers(20, 400),
    split=st.lists(st.floats(0.05, 0.95), min_size=1, max_size=2, unique=True),
    tie=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_log_probabilities_sum_to_one_and_match_the_target_path(vocab, split, tie, seed):
    cutoffs = tuple(sorted({max(1, min(vocab - 1, int(f * vocab))) for f in split}))
    model = adaptive_model(vocab, cutoffs, tie, seed=seed)
    x = torch.randint(vocab, (3, 6), generator=torch.Generator().manual_seed(seed))
    y = torch.randint(vocab, (3, 6), generator=torch.Generator().manual_seed(seed + 1))
    logp, _ = model(x)  # (B, T, V)
    assert logp.shape == (3, 6, vocab)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 6), rtol=0, atol=1e-5)
    targets, _ = model.score(x, y)  # the training path: only the clusters the targets need
    torch.testing.assert_close(targets, logp.gather(-1, y.unsqueeze(-1)).squeeze(-1))


def test_it_is_torchs_adaptive_softmax_in_token_id_order():
    model = adaptive_model(tie=False)
    hidden, _ = model.features(torch.randint(300, (2, 5)))  # (B, T, H)
    hidden = model.projection(hidden) if model.projection is not None else hidden
    by_rank = model.adaptive.body.log_prob(hidden.reshape(-1, hidden.shape[-1]))  # (N, V)
    ids_by_rank = model.adaptive.ids_by_rank
    ours = model.logits(hidden).reshape(-1, 300)  # (N, V) in id order
    torch.testing.assert_close(ours[:, ids_by_rank], by_rank)


def test_tying_shares_the_shortlist_with_the_embedding():
    model = adaptive_model(tie=True)
    names = set(model.state_dict())
    assert "adaptive.body.head.weight" not in names  # the shortlist rows are the embedding's
    assert "adaptive.body.head.cluster_weight" in names
    frequent = int(model.adaptive.ids_by_rank[0])
    with torch.no_grad():
        model.embedding.weight[frequent] += 1.0
    hidden = torch.randn(1, model.config.embed_size)
    before = adaptive_model(tie=True).adaptive.body.head(hidden)
    after = model.adaptive.body.head(hidden)
    changed = (after - before).abs() > 1e-6  # (1, S + K)
    assert changed[0, 0] and changed.sum() == 1  # the frequent token's head logit only


def test_cutoffs_follow_the_frequencies():
    rng = np.random.default_rng(0)
    vocab = 8000
    zipf = 1.0 / np.arange(1, vocab + 1)
    ids = rng.choice(vocab, size=100_000, p=zipf / zipf.sum())
    cutoffs = choose_cutoffs(ids, vocab, 200)
    order = frequency_order(ids, vocab)
    counts = np.bincount(ids, minlength=vocab)
    assert list(cutoffs) == sorted(set(cutoffs)) and cutoffs[0] > 0 and cutoffs[-1] < vocab
    assert counts[order[: cutoffs[0]]].sum() >= 0.8 * len(ids)  # the head holds most text
    assert np.all(np.diff(counts[order]) <= 0)  # frequent first


def test_auto_picks_adaptive_for_large_vocabularies_only():
    ids = np.arange(10_000) % 5000
    assert output_layer("auto", ids, ADAPTIVE_FROM_VOCAB - 1, 64)["softmax"] == "full"
    assert output_layer("auto", ids, ADAPTIVE_FROM_VOCAB, 64)["softmax"] == "adaptive"
    assert output_layer("full", ids, 50_000, 64) == {"softmax": "full", "cutoffs": ()}
    with pytest.raises(RnngenError, match="adaptive needs a vocabulary"):
        output_layer("adaptive", ids % 10, 10, 64)


def test_bad_cutoffs_are_a_config_error():
    for cutoffs in [(), (0,), (50, 40), (300,), (10, 10)]:
        with pytest.raises(RnngenError, match="cutoffs"):
            ModelConfig(vocab_size=300, softmax="adaptive", cutoffs=cutoffs)


def test_checkpoint_keeps_the_order_and_refuses_a_broken_one(tmp_path):
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer

    text = tiny_text(200)
    tokenizer = train_tokenizer([text], TokenizerConfig(kind="char"))
    vocab = tokenizer.vocab_size
    model = adaptive_model(vocab, (8, 20))
    path = tmp_path / "m.safetensors"
    save_model(path, model, tokenizer, {})
    loaded, _, _ = load_model(path)
    assert torch.equal(loaded.adaptive.ids_by_rank, model.adaptive.ids_by_rank)
    x = torch.randint(vocab, (2, 7))
    torch.testing.assert_close(loaded(x)[0], model(x)[0])
    with torch.no_grad():
        model.adaptive.ids_by_rank[0] = model.adaptive.ids_by_rank[1]  # not a permutation
    save_model(path, model, tokenizer, {})
    with pytest.raises(RnngenError, match="not a permutation"):
        load_model(path)


@pytest.fixture(scope="module")
def word_model(tmp_path_factory):
    """A tiny word-level model with an adaptive softmax, trained through the command line."""
    root = tmp_path_factory.mktemp("adaptive")
    corpus = root / "corpus.txt"
    corpus.write_text(tiny_text(600))
    result = run_cli(
        "train", str(corpus), "--kind", "word", "--softmax", "adaptive", "--hidden", "24",
        "--layers", "1", "--batch-size", "4", "--seq-len", "16", "--max-steps", "120",
        "--device", "cpu", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "output: adaptive softmax" in result.stderr and "tied to the embedding" in result.stderr
    return root


def test_eval_with_an_adaptive_model_scores_the_same_targets(word_model):
    result = run_cli("eval", "--json", "-q", "--ngram-order", "3", cwd=word_model)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert len({row["tokens"] for row in rows.values()}) == 1  # identical targets
    rnn = next(row for name, row in rows.items() if name.startswith("lstm"))
    assert rnn["bits_per_char"] < rows["unigram"]["bits_per_char"]


def test_sample_and_score_with_an_adaptive_model(word_model):
    sample = run_cli("sample", "-n", "20", "--seed", "1", "-q", cwd=word_model)
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.strip()
    scored = run_cli("score", input="the cat sat on the mat.\n", cwd=word_model)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["logprob"] < 0


def test_info_shows_the_output_layer_and_regularizers(word_model):
    result = run_cli("info", str(word_model / "checkpoints" / "corpus.safetensors"))
    assert result.returncode == 0, result.stderr
    assert "adaptive softmax, head" in result.stdout
    assert "dropout 0.1/0.1/0.1 (input/hidden/output)" in result.stdout
