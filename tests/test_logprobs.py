"""Scoring: every target exactly once, however the text is cut into streams."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngen.config import ModelConfig
from rnngen.model import RNNLM
from rnngen.scoring.logprobs import Score, model_logprobs, sequence_logprobs

CPU = torch.device("cpu")


def gru():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=30, cell="gru", layers=2, hidden_size=24, embed_size=24)
    return RNNLM(config).eval()


MODEL = gru()


@settings(max_examples=25, deadline=None)
@given(length=st.integers(2, 400), streams=st.integers(1, 9), seed=st.integers(0, 10))
def test_parallel_streams_score_each_target_once(length, streams, seed):
    ids = np.random.default_rng(seed).integers(0, 30, length)
    single = model_logprobs(MODEL, ids, CPU, streams=1, window=37)
    parallel = model_logprobs(MODEL, ids, CPU, streams=streams, window=37, warmup=200)
    assert single.shape == parallel.shape == (length - 1,)
    # A GRU with random weights forgets within a few dozen tokens: warmed streams match.
    np.testing.assert_allclose(parallel, single, atol=1e-4)


def test_state_is_carried_through_the_whole_text():
    ids = np.random.default_rng(1).integers(0, 30, 300)
    carried = model_logprobs(MODEL, ids, CPU, window=16)
    with torch.no_grad():
        logits, _ = MODEL(torch.from_numpy(ids[None, :-1]))
        direct = torch.log_softmax(logits[0], -1)[torch.arange(299), torch.from_numpy(ids[1:])]
    np.testing.assert_allclose(carried, direct.numpy(), atol=1e-5)


def test_sequence_logprobs_match_one_pass_each():
    sequences = [[1, 2, 3], [4], [5, 6, 7, 8, 9], []]
    totals = sequence_logprobs(MODEL, sequences, [0], CPU, batch_size=2)
    for sequence, total in zip(sequences, totals, strict=True):
        expected = model_logprobs(MODEL, np.array([0, *sequence]), CPU).sum() if sequence else 0
        assert total == np.float64(expected) or abs(total - expected) < 1e-5


def test_score_figures():
    score = Score("x", nats=100 * np.log(2), tokens=50, chars=100, bytes=200)
    assert score.bits_per_char == 1.0 and score.bits_per_byte == 0.5
    assert abs(score.ppl - 2**2) < 1e-9
