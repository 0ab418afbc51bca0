"""The oracle and agreement rows that eval adds on the built-in corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from rnngen.config import TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.ngram import KneserNey
from rnngen.synth import generate_lines, oracle
from rnngen.synth.agreement import agreement_accuracy, agreement_probes


@pytest.fixture(scope="module")
def corpus():
    lines = list(generate_lines(2300, seed=0))
    return lines[:2000], lines[2000:]


def test_probes_differ_only_in_the_verb(corpus):
    _, test = corpus
    items = oracle(test).items
    right, wrong, buckets = agreement_probes(test, items)
    for (line_index, item), r, w in zip(items, right, wrong, strict=True):
        assert test[line_index].startswith(r[: item.offset])
        assert r[item.offset :].startswith(item.correct) and w[item.offset :].startswith(item.wrong)
        assert r[: item.offset] == w[: item.offset] and r[-1] == w[-1]
    assert set(buckets) == {"1-2", "3-5", "6-10", ">10"}


def test_accuracy_is_computed_per_bucket(corpus):
    _, test = corpus
    items = oracle(test).items

    def always_right(texts):  # knows the answers: scores the probes it was built from
        right = set(agreement_probes(test, items)[0])
        return np.array([0.0 if t in right else -1.0 for t in texts])

    def shorter(texts):
        return -np.array([len(t) for t in texts], dtype=float)

    result = agreement_accuracy(test, items, {"right": always_right, "shorter": shorter})
    assert all(v == 1.0 for v in result.accuracy["right"].values())
    right, wrong, buckets = agreement_probes(test, items)
    expected = np.array([len(r) < len(w) for r, w in zip(right, wrong, strict=True)])
    buckets = np.array(buckets)
    for label, value in result.accuracy["shorter"].items():
        assert value == pytest.approx(expected[buckets == label].mean())
    assert sum(result.counts.values()) == len(items)


def test_a_char_ngram_is_near_chance_beyond_its_order(corpus):
    train, test = corpus
    tokenizer = train_tokenizer([line.rstrip("\n") for line in train], TokenizerConfig(kind="char"))
    model = KneserNey.fit(tokenizer.encode_array("".join(train)), 5, tokenizer.vocab_size)
    context = [tokenizer.newline_id]

    def score(texts):
        return np.array(
            [model.logprobs(np.array(context + tokenizer.encode(t))).sum() for t in texts]
        )

    result = agreement_accuracy(test, oracle(test).items, {"kn": score})
    # Four characters of context cannot reach a subject six or more words back.
    assert result.accuracy["kn"]["6-10"] < 0.72 and result.accuracy["kn"][">10"] < 0.75


@pytest.mark.slow
def test_lstm_stays_far_above_the_ngram_at_long_distances(tmp_path):
    """The picture issue 6 promises, on a real run with default settings. Measured: after
    150 s the LSTM is at 87-98% in every bucket and the 5-gram at 52-73%; after 40 s the LSTM
    has learned the text (0.86 vs 0.98 bits/char) but not yet agreement."""
    corpus = tmp_path / "synth.txt"
    assert run_cli("synth", "-o", str(corpus), "-q").returncode == 0
    result = run_cli("train", str(corpus), "--time-budget", "150", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(run_cli("eval", "--json", "-q", cwd=tmp_path).stdout)
    rnn, kn = (report["agreement"]["accuracy"][row["name"]] for row in report["rows"][:2])
    for bucket in ("6-10", ">10"):
        assert rnn[bucket] > 0.8 and rnn[bucket] > kn[bucket] + 0.15, (bucket, rnn, kn)
    rows = {row["name"]: row["bits_per_char"] for row in report["rows"]}
    assert rows["oracle (true entropy)"] < min(v for k, v in rows.items() if "oracle" not in k)
