"""rnngen.ngram: KenLM's numbers, a brute-force reference, invariants, files, edge cases."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnngen.errors import RnngenError
from rnngen.ngram import KneserNey
from rnngen.ngram.estimate import FALLBACK_DISCOUNTS
from rnngen.ngram.kenlm import fit_sentences, score_sentences, split_words, write_arpa

SHARED = Path(__file__).resolve().parents[2] / "shared"
KENLM_REFERENCE = SHARED / "reference" / "kenlm-tinyshakespeare.json"
TINYSHAKESPEARE = SHARED / "corpora" / "tinyshakespeare"
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_lines(path: Path) -> list[str]:
    """One sentence per line, only "\\n" ending a line, as KenLM reads."""
    with open(path, encoding="utf-8", newline="\n") as f:
        return list(f)


# --- KenLM's own numbers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tinyshakespeare():
    if not (KENLM_REFERENCE.exists() and TINYSHAKESPEARE.is_dir()):
        pytest.skip("shared/ reference data is absent")
    reference = json.loads(KENLM_REFERENCE.read_text())
    return (
        read_lines(TINYSHAKESPEARE / "train.txt"),
        read_lines(TINYSHAKESPEARE / "valid.txt"),
        reference,
    )


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_matches_kenlm_on_tinyshakespeare(tinyshakespeare, order):
    train, valid, reference = tinyshakespeare
    expected = reference["orders"][str(order)]
    model, words = fit_sentences(train, order)
    score = score_sentences(model, words, valid)
    assert score.tokens == expected["tokens"]
    assert score.oovs == expected["oovs"]
    assert score.ppl_including_oov == pytest.approx(expected["ppl_including_oov"], rel=1e-5)
    assert score.ppl_excluding_oov == pytest.approx(expected["ppl_excluding_oov"], rel=1e-5)
    assert model.stats.ngram_counts == {int(k): v for k, v in expected["ngram_counts"].items()}
    for k, d in expected["discounts"].items():
        assert model.stats.discounts[int(k)] == pytest.approx(
            (d["D1"], d["D2"], d["D3+"]), abs=1e-5
        )
    assert model.stats.fallback_orders == []


# --- a brute-force reference: kenlm-semantics.md term by term, over tuples ---------------------


class BruteForceKN:
    """Obviously-correct, slow interpolated modified Kneser-Ney.

    sequences: lists of ids; in sentence mode each starts with bos, which is context only.
    In stream mode (one sequence, no bos) an n-gram at the very start of the stream counts one
    extra distinct left context, as a sentence's first word does after <s>.
    """

    def __init__(self, sequences, order, vocab_size, *, stream):
        self.order, self.vocab_size, self.bos = order, vocab_size, vocab_size
        counts, left, at_start = Counter(), defaultdict(set), set()
        for seq in sequences:
            for end in range(len(seq)):
                if seq[end] == self.bos:
                    continue
                for start in range(end, max(end - order, -1), -1):
                    gram = tuple(seq[start : end + 1])
                    if self.bos in gram[1:]:
                        break
                    counts[gram] += 1
                    if start > 0:
                        left[gram].add(seq[start - 1])
                    elif stream:
                        at_start.add(gram)
        self.adjusted = {}
        for gram, count in counts.items():
            if len(gram) == order or gram[0] == self.bos:
                self.adjusted[gram] = count
            else:
                self.adjusted[gram] = len(left[gram]) + (gram in at_start)
        self.followers = defaultdict(dict)  # context -> {word: adjusted count of context+word}
        for gram, a in self.adjusted.items():
            if gram != (self.bos,):
                self.followers[gram[:-1]][gram[-1]] = a
        self.discounts, self.fallback_orders = {}, []
        for k in range(1, order + 1):
            n = Counter(a for g, a in self.adjusted.items() if len(g) == k)
            d = None
            if n[1] and n[2] and n[3]:
                y = n[1] / (n[1] + 2 * n[2])
                d = (1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3])
                if not all(0 < d[j - 1] <= j for j in (1, 2, 3)):
                    d = None
            if d is None:
                d, _ = FALLBACK_DISCOUNTS, self.fallback_orders.append(k)
            self.discounts[k] = d

    def discount(self, a, k):
        return 0.0 if a == 0 else self.discounts[k][min(a, 3) - 1]

    def prob(self, word, context):
        """p(word | context) by the interpolation formula, recursively."""
        context = tuple(context)[max(len(context) - self.order + 1, 0) :] if self.order > 1 else ()
        k = len(context) + 1
        followers = self.followers.get(context, {})
        denom = sum(followers.values())
        if denom == 0:
            return 1 / self.vocab_size if k == 1 else self.prob(word, context[1:])
        gamma = sum(self.discount(a, k) for a in followers.values()) / denom
        a = followers.get(word, 0)
        lower = 1 / self.vocab_size if k == 1 else self.prob(word, context[1:])
        return (a - self.discount(a, k)) / denom + gamma * lower


def contexts_of(ids, order):
    return [ids[max(0, t - order + 1) : t] for t in range(1, len(ids))]


def brute_force_logprobs(reference, ids):
    """ln p of ids[1:], each given up to order-1 preceding ids."""
    targets = list(ids)[1:]
    contexts = contexts_of(list(ids), reference.order)
    return [math.log(reference.prob(x, h)) for x, h in zip(targets, contexts, strict=True)]


stream_cases = st.integers(2, 8).flatmap(
    lambda v: st.tuples(
        st.just(v),
        st.lists(st.integers(0, v - 1), max_size=60),
        st.lists(st.integers(0, v - 1), max_size=20),
        st.integers(1, 5),
    )
)


@HYPOTHESIS
@given(stream_cases)
def test_stream_matches_brute_force(case):
    vocab_size, train, test, order = case
    model = KneserNey.fit(np.array(train, dtype=np.int64), order, vocab_size)
    reference = BruteForceKN([train], order, vocab_size, stream=True)
    assert model.stats.fallback_orders == reference.fallback_orders
    for k in range(1, order + 1):
        assert model.stats.discounts[k] == pytest.approx(reference.discounts[k], abs=1e-12)
    expected = brute_force_logprobs(reference, test)
    np.testing.assert_allclose(model.logprobs(np.array(test)), expected, rtol=1e-9, atol=1e-12)


@HYPOTHESIS
@given(stream_cases, st.lists(st.integers(0, 7), max_size=6))
def test_stream_distributions_sum_to_one_and_match_logprobs(case, other_context):
    vocab_size, train, test, order = case
    model = KneserNey.fit(np.array(train, dtype=np.uint16), order, vocab_size)
    seen = contexts_of(train, order) + [train[-order:]]
    unseen = [[t % vocab_size for t in other_context]]
    for context in seen + unseen:
        probs = model.distribution(np.array(context, dtype=np.int64))
        assert probs.shape == (vocab_size,)
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert (probs > 0).all()
    logp = model.logprobs(np.array(test, dtype=np.uint32))
    assert logp.shape == (max(len(test) - 1, 0),) and logp.dtype == np.float64
    for t, context in enumerate(contexts_of(test, order)):
        expected = math.log(model.distribution(np.array(context, dtype=np.int64))[test[t + 1]])
        assert logp[t] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_brute_force_on_zipfian_data_with_estimated_discounts():
    rng = np.random.default_rng(1)
    train, test = rng.zipf(1.5, 400) % 10, rng.zipf(1.5, 100) % 10
    model = KneserNey.fit(train, 4, 10)
    reference = BruteForceKN([train.tolist()], 4, 10, stream=True)
    assert model.stats.fallback_orders == reference.fallback_orders == [1]
    for k in (1, 2, 3, 4):
        assert model.stats.discounts[k] == pytest.approx(reference.discounts[k], abs=1e-12)
    expected = brute_force_logprobs(reference, test.tolist())
    np.testing.assert_allclose(model.logprobs(test), expected, rtol=1e-9)


WORDS = ["a", "b", "c", "d", "e"]
sentence_lines = st.lists(
    st.tuples(
        st.lists(st.sampled_from(WORDS), max_size=6),
        st.sampled_from([" ", "\t", "  ", " \r "]),
        st.booleans(),
    ).map(lambda t: t[1].join(t[0]) + ("\n" if t[2] else "")),
    max_size=8,
)


def check_sentences_against_brute_force(train, test, order):
    model, words = fit_sentences(train, order)
    bos, index = model.bos, {w: i for i, w in enumerate(words[: model.vocab_size])}

    def sequences(lines):
        return [[bos, *(index.get(w, 0) for w in split_words(line)), 1] for line in lines]

    reference = BruteForceKN(sequences(train), order, model.vocab_size, stream=False)
    assert model.stats.fallback_orders == reference.fallback_orders
    for k in range(1, order + 1):
        assert model.stats.discounts[k] == pytest.approx(reference.discounts[k], abs=1e-12)
    total, oov_total, oovs = 0.0, 0.0, 0
    for seq in sequences(test):
        for t in range(1, len(seq)):
            logp = math.log(reference.prob(seq[t], seq[:t]))
            total += logp
            if seq[t] == 0:
                oovs, oov_total = oovs + 1, oov_total + logp
    score = score_sentences(model, words, test)
    assert (score.sentences, score.oovs) == (len(test), oovs)
    assert score.tokens == sum(len(seq) - 1 for seq in sequences(test))
    assert score.total_logprob_nats == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert score.oov_logprob_nats == pytest.approx(oov_total, rel=1e-9, abs=1e-9)
    return model, sequences


@HYPOTHESIS
@given(sentence_lines, sentence_lines, st.integers(1, 5))
def test_sentences_match_brute_force(train, test, order):
    test = [line.replace("e", "zz") for line in test]  # words never seen in training: OOVs
    model, sequences = check_sentences_against_brute_force(train, test, order)
    for seq in sequences(train + test):
        logp = model.logprobs(np.array(seq))
        for t in range(1, len(seq)):
            probs = model.distribution(np.array(seq[:t]))
            assert probs.sum() == pytest.approx(1.0, abs=1e-9) and (probs > 0).all()
            assert logp[t - 1] == pytest.approx(math.log(probs[seq[t]]), rel=1e-12, abs=1e-12)


def test_sentences_brute_force_on_zipfian_text_with_estimated_discounts():
    rng = np.random.default_rng(4)

    def lines(n):
        return [
            " ".join(f"w{z % 40}" for z in rng.zipf(1.6, rng.integers(0, 9))) + "\n"
            for _ in range(n)
        ]

    model, _ = check_sentences_against_brute_force(lines(200), lines(40), 3)
    assert model.stats.fallback_orders == []


# --- edge cases --------------------------------------------------------------------------------


def test_order_larger_than_the_data():
    model = KneserNey.fit(np.array([3, 1, 4, 1, 5]), 9, 6)
    assert model.stats.ngram_counts[9] == 0 and model.stats.ngram_counts[5] == 1
    assert 9 in model.stats.fallback_orders
    logp = model.logprobs(np.array([3, 1, 4, 1, 5, 9 % 6, 2, 6 - 1]))
    assert np.isfinite(logp).all() and (logp < 0).all()
    assert model.distribution(np.array([1, 4, 1, 5, 0, 2, 3, 3, 3, 3])).sum() == pytest.approx(1)


def test_empty_training_stream_is_uniform():
    model = KneserNey.fit(np.array([], dtype=np.int64), 3, 5)
    np.testing.assert_allclose(model.distribution(np.array([1, 2])), np.full(5, 0.2))
    np.testing.assert_allclose(model.logprobs(np.array([0, 1, 2])), np.log([0.2, 0.2]))
    assert model.logprobs(np.array([4])).shape == (0,)


def test_degenerate_data_falls_back_and_says_so():
    model = KneserNey.fit(np.array([0, 1] * 20), 3, 2)
    assert model.stats.fallback_orders == [1, 2, 3]
    assert all(model.stats.discounts[k] == FALLBACK_DISCOUNTS for k in (1, 2, 3))
    assert model.distribution(np.array([0, 1])).sum() == pytest.approx(1.0)


def test_vocab_to_the_order_beyond_64_bits():
    rng = np.random.default_rng(0)
    vocab_size, order = 60_000, 9  # 60000**9 is about 2**143
    ids = rng.integers(0, 50, 3000) * 1000 + rng.integers(0, 3, 3000)  # repetitive, large ids
    model = KneserNey.fit(ids, order, vocab_size)
    assert model.stats.ngram_counts[9] > 0
    logp = model.logprobs(ids[:200])
    for t in (1, 50, 199):
        probs = model.distribution(ids[max(0, t - order + 1) : t])
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert logp[t - 1] == pytest.approx(math.log(probs[ids[t]]), rel=1e-12)


def test_empty_lines_and_missing_final_newline_are_sentences():
    model, words = fit_sentences(["a b\n", "\n", "b\ta\r c"], 3)
    assert model.stats.train_tokens == 5 + 3  # words + one </s> per line
    score = score_sentences(model, words, ["\n", "a b", ""])
    assert (score.sentences, score.tokens, score.oovs) == (3, 1 + 3 + 1, 0)
    assert words[0] == "<unk>" and words[1] == "</s>" and words[-1] == "<s>"


def test_bad_input_is_a_user_error():
    with pytest.raises(RnngenError):
        KneserNey.fit(np.array([0, 1]), 0, 2)
    with pytest.raises(RnngenError):
        KneserNey.fit(np.array([0, 1]), 10, 2)
    with pytest.raises(RnngenError):
        KneserNey.fit(np.array([0, 2]), 2, 2)
    with pytest.raises(RnngenError):
        KneserNey.fit(np.array([[0, 1]]), 2, 2)
    with pytest.raises(RnngenError):
        KneserNey.fit(np.array([0.0, 1.0]), 2, 2)
    model = KneserNey.fit(np.array([0, 1, 1]), 2, 2)
    with pytest.raises(RnngenError):
        model.logprobs(np.array([0, 2]))  # 2 is BOS: not a stream id
    with pytest.raises(RnngenError):
        model.distribution(np.array([-1]))
    with pytest.raises(RnngenError):
        fit_sentences(["a <s> b\n"], 2)


def test_id_dtypes_agree():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 300, 2000)
    expected = KneserNey.fit(ids, 4, 300).logprobs(ids[:500])
    for dtype in (np.uint16, np.uint32, np.int32):
        got = KneserNey.fit(ids.astype(dtype), 4, 300).logprobs(ids[:500].astype(dtype))
        np.testing.assert_array_equal(got, expected)


# --- files -------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 40, 3000)
    model = KneserNey.fit(ids, 4, 40)
    path = tmp_path / "kn.safetensors"
    model.save(path)
    loaded = KneserNey.load(path)
    assert loaded.stats == model.stats
    np.testing.assert_array_equal(loaded.logprobs(ids[:300]), model.logprobs(ids[:300]))
    np.testing.assert_array_equal(loaded.distribution(ids[:7]), model.distribution(ids[:7]))
    assert [p.name for p in tmp_path.iterdir()] == ["kn.safetensors"]  # no temporary left

    sentences, words = fit_sentences(["a b c\n", "b c a\n"], 3)
    sentences.save(path)
    assert score_sentences(KneserNey.load(path), words, ["a b"]) == score_sentences(
        sentences, words, ["a b"]
    )


def test_load_rejects_foreign_and_damaged_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a safetensors file")
    for path in (garbage, tmp_path / "missing.safetensors", tmp_path):
        with pytest.raises(RnngenError):
            KneserNey.load(path)
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3)}, str(foreign), metadata={"format": "something/1"})
    with pytest.raises(RnngenError, match="not an rnngen n-gram"):
        KneserNey.load(foreign)


def read_arpa(text):
    """log10 probabilities and backoffs by n-gram tuple, and the header counts."""
    probs, backoffs, header, order = {}, {}, {}, 0
    for line in text.splitlines():
        if line.startswith("ngram "):
            k, n = line[6:].split("=")
            header[int(k)] = int(n)
        elif line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
        elif order and line and not line.startswith("\\"):
            fields = line.split("\t")
            gram = tuple(fields[1].split(" "))
            assert len(gram) == order
            probs[gram] = float(fields[0])
            if len(fields) == 3:
                backoffs[gram] = float(fields[2])
    return probs, backoffs, header


def arpa_log10p(probs, backoffs, context, word):
    """The standard backoff query of an ARPA model."""
    if (*context, word) in probs:
        return probs[(*context, word)]
    return backoffs.get(context, 0.0) + arpa_log10p(probs, backoffs, context[1:], word)


def test_arpa_sentence_model_reproduces_probabilities(tmp_path):
    train = ["the cat sat on the mat\n", "the dog sat\n", "a cat ran on a mat\n", "\n"] * 3
    model, words = fit_sentences(train + ["the cat ran\n"], 3)
    path = tmp_path / "model.arpa"
    write_arpa(model, path, words)
    probs, backoffs, header = read_arpa(path.read_text())
    assert header == model.stats.ngram_counts
    assert probs[("<s>",)] == -99 and ("<unk>",) in probs
    test = ["the cat sat on a mat", "a dog ran on the cat", "zebra sat"]
    index = {w: i for i, w in enumerate(words[: model.vocab_size])}
    for line in test:
        seq = ["<s>", *(w if w in index else "<unk>" for w in line.split()), "</s>"]
        ids = np.array([model.bos if w == "<s>" else index[w] for w in seq])
        logp = model.logprobs(ids)
        for t in range(1, len(seq)):
            context = tuple(seq[max(0, t - 2) : t])
            expected = arpa_log10p(probs, backoffs, context, seq[t]) * math.log(10)
            assert logp[t - 1] == pytest.approx(expected, abs=2e-5)


def test_arpa_stream_model_adds_sentence_markers():
    ids = np.array([0, 1, 2, 1, 0, 1, 2, 2, 1, 0, 0, 1])
    model = KneserNey.fit(ids, 3, 4)
    out = io.StringIO()
    write_arpa(model, out, lambda i: f"t{i}")
    probs, backoffs, header = read_arpa(out.getvalue())
    assert header[1] == 4 + 3 and {("<s>",), ("</s>",), ("<unk>",)} <= set(probs)
    logp = model.logprobs(ids)
    names = [f"t{i}" for i in ids]
    for t in range(1, len(ids)):
        context = tuple(names[max(0, t - 2) : t])
        expected = arpa_log10p(probs, backoffs, context, names[t]) * math.log(10)
        assert logp[t - 1] == pytest.approx(expected, abs=2e-5)
    for names in (["a", "b c", "d", "e"], ["a", "b", "a", "c"], ["a", "b"], ["a", "", "c", "d"]):
        with pytest.raises(RnngenError):
            write_arpa(model, io.StringIO(), names)


@pytest.mark.skipif(shutil.which("lmplz") is None, reason="KenLM's lmplz is not on PATH")
def test_arpa_matches_kenlm_lmplz(tmp_path):
    rng = np.random.default_rng(5)
    lines = [
        " ".join(f"w{z % 5000}" for z in rng.zipf(1.3, rng.integers(0, 15))) + "\n"
        for _ in range(3000)
    ]
    text = tmp_path / "train.txt"
    text.write_text("".join(lines))
    with open(text) as stdin:
        kenlm = subprocess.run(
            ["lmplz", "-o", "4", "-S", "100M", "--discount_fallback"],
            stdin=stdin,
            capture_output=True,
            text=True,
        )
    assert kenlm.returncode == 0, kenlm.stderr[-500:]
    model, words = fit_sentences(lines, 4)
    out = io.StringIO()
    write_arpa(model, out, words)
    ours, ours_backoffs, ours_header = read_arpa(out.getvalue())
    theirs, theirs_backoffs, theirs_header = read_arpa(kenlm.stdout)
    assert ours_header == theirs_header and set(ours) == set(theirs)
    # KenLM works in float32: 1 - D1 loses digits when D1 is near 1, hence 1e-4 in log10.
    for gram, log10p in ours.items():
        if gram != ("<s>",):
            assert log10p == pytest.approx(theirs[gram], abs=1e-4), gram
    for gram in set(ours_backoffs) | set(theirs_backoffs):
        assert ours_backoffs.get(gram, 0.0) == pytest.approx(
            theirs_backoffs.get(gram, 0.0), abs=1e-4
        ), gram
