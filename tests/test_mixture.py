"""The RNN + n-gram mixture: exact, fit by EM, the same in eval, score and sample."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, tiny_text
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.ngram import KneserNey
from rnngen.sampling.batch import _NGramRow
from rnngen.scoring.mixture import fit_weight, mix_logprobs
from rnngen.scoring.mixture_weight import FIT, parse_mix

SMALL = ["--hidden", "32", "--embed", "32", "--layers", "1", "--batch-size", "8",
         "--seq-len", "32", "--quiet"]  # fmt: skip


def log_distributions(draw_size: int, rng: np.random.Generator) -> np.ndarray:
    """Random log-probabilities of the targets of a text, as a model would give them."""
    return np.log(rng.dirichlet(np.ones(5), size=draw_size)[:, 0])  # (T,)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 300), st.floats(0.01, 0.99))
def test_em_never_lowers_the_likelihood_and_finds_the_best_weight(seed, size, start):
    rng = np.random.default_rng(seed)
    rnn, ngram = log_distributions(size, rng), log_distributions(size, rng)
    fit = fit_weight(rnn, ngram, start=start)
    assert all(b >= a for a, b in zip(fit.mean_logprob, fit.mean_logprob[1:], strict=False))
    assert 0.0 <= fit.weight <= 1.0
    # the likelihood is concave in λ: no weight on a grid does clearly better
    best = max(mix_logprobs(rnn, ngram, w).mean() for w in np.linspace(0, 1, 101))
    assert fit.mean_logprob[-1] >= best - 1e-4


def test_em_weight_follows_the_better_model():
    rng = np.random.default_rng(0)
    good, bad = np.full(500, math.log(0.5)), np.full(500, math.log(0.01))
    assert fit_weight(bad, good).weight > 0.95
    assert fit_weight(good, bad).weight < 0.05
    noise = log_distributions(500, rng)
    assert 0.0 < fit_weight(noise, log_distributions(500, rng)).weight < 1.0


def test_the_ends_of_the_mixture_are_the_models_exactly():
    rng = np.random.default_rng(1)
    rnn, ngram = log_distributions(50, rng), log_distributions(50, rng)
    assert np.array_equal(mix_logprobs(rnn, ngram, 0.0), rnn)
    assert np.array_equal(mix_logprobs(rnn, ngram, 1.0), ngram)
    half = mix_logprobs(rnn, ngram, 0.5)
    assert np.allclose(np.exp(half), 0.5 * np.exp(rnn) + 0.5 * np.exp(ngram))


def test_parse_mix():
    assert parse_mix("fit") == FIT and parse_mix(" FIT ") == FIT
    assert parse_mix("0.25") == 0.25 and parse_mix("1") == 1.0
    for bad in ("-0.1", "1.5", "nan", "lots", ""):
        with pytest.raises(RnngenError, match="--mix|mixture weight"):
            parse_mix(bad)


@pytest.fixture(scope="module")
def models():
    """A random tiny RNN and a 3-gram over the same character tokenizer."""
    text = tiny_text(200)
    tokenizer = train_tokenizer(text.splitlines(), TokenizerConfig(kind="char"))
    torch.manual_seed(0)
    rnn = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embed_size=16))
    ngram = KneserNey.fit(tokenizer.encode_array(text), 3, tokenizer.vocab_size)
    return tokenizer, rnn.eval(), ngram


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_the_sampled_mixture_sums_to_one_in_every_context(models, weight):
    """A mixture row of the sampler (rnngen/stepper.py): its logits are log-probabilities."""
    tokenizer, rnn, ngram = models
    context = [tokenizer.newline_id, *tokenizer.encode("the ca")]
    row = _NGramRow(ngram, context, weight)
    with torch.inference_mode():
        rnn_logits, state = rnn(torch.tensor([context]))
        rnn_logits = rnn_logits[:, -1]  # (1, V)
        for _ in range(5):
            logits = row.logits(rnn_logits)  # (1, V)
            assert torch.allclose(logits.exp().sum(-1), torch.ones(1), atol=1e-5)
            row.feed(3)
            rnn_logits, state = rnn(torch.tensor([[3]]), state)
            rnn_logits = rnn_logits[:, -1]
        logits = row.logits(rnn_logits)
    if weight == 1.0:  # all n-gram: exactly its distribution
        context = np.array([tokenizer.newline_id, *tokenizer.encode("the ca"), 3, 3, 3, 3, 3])
        assert np.allclose(logits[0].exp().numpy(), ngram.distribution(context), atol=1e-6)


# -- through the command line ---------------------------------------------------------------


def invoke(cwd, *args: str, input: str | None = None):
    """The CLI in-process (a real subprocess costs seconds of start-up per call): exit code,
    stdout and stderr apart."""
    from typer.testing import CliRunner

    from rnngen.cli import app

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), input=input)
    finally:
        os.chdir(previous)


def eval_rows(trained, *options) -> tuple[dict, dict]:
    result = invoke(trained, "eval", "--json", "-q", *options)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    return report, {row["name"]: row for row in report["rows"]}


def test_eval_adds_the_fitted_mixture_on_identical_targets(trained):
    report, rows = eval_rows(trained)
    mixed = rows["lstm 1x32 + 5-gram"]
    assert len({row["tokens"] for row in rows.values()}) == 1
    assert 0.0 <= report["mixture"]["lambda"] <= 1.0
    assert report["mixture"]["fit_on"] == "valid split"
    assert report["mixture"]["scored_on_fit_text"] is False  # eval scores the test split
    # fit on other text it need not beat both, but it cannot lose to the worse of the two
    worse = max(rows["lstm 1x32"]["nats"], rows["kneser-ney 5-gram"]["nats"])
    assert mixed["nats"] < worse
    assert "lstm 1x32 + 5-gram" in report["agreement"]["accuracy"]


def test_fixed_weights_at_the_ends_reproduce_the_rows_exactly(trained):
    _, rows = eval_rows(trained, "--mix", "0")
    assert rows["lstm 1x32 + 5-gram"]["nats"] == rows["lstm 1x32"]["nats"]
    report, rows = eval_rows(trained, "--mix", "1")
    assert rows["lstm 1x32 + 5-gram"]["nats"] == rows["kneser-ney 5-gram"]["nats"]
    assert report["mixture"] == {"lambda": 1.0, "fit_on": None, "fit_tokens": 0,
                                 "scored_on_fit_text": False}  # fmt: skip


def test_no_mix_drops_the_row_and_the_fit_is_cached(trained):
    _, rows = eval_rows(trained, "--no-mix")
    assert not any("+" in name for name in rows)
    first = invoke(trained, "eval")
    second = invoke(trained, "eval")
    assert "mixture: λ" in second.stderr and "(cached)" in second.stderr
    assert first.stdout == second.stdout


def test_a_damaged_mixture_cache_entry_is_fit_again(trained):
    """A weight outside [0, 1], NaN or a string, JSON nested too deep: the entry is fit again
    and rewritten, as a damaged token or n-gram cache entry is rebuilt, by eval, score, sample
    and the API alike; never an error about a weight the user never gave, nor a dropped row."""
    import rnngen
    from rnngen.corpus.cache import cache_root
    from rnngen.scoring.mixture_weight import model_digest

    report, _ = eval_rows(trained)  # fits the weight and caches it
    checkpoint = trained / "checkpoints" / "synth.safetensors"
    digest = model_digest(rnngen.load(checkpoint, device="cpu").model)
    entries = sorted((cache_root() / "mixture").glob(f"*-{digest}.json"))  # this model's
    assert len(entries) == 1
    damages = [
        lambda r: json.dumps({**r, "lambda": 1.5}),
        lambda r: "[" * 5000 + "]" * 5000,
        lambda r: json.dumps({**r, "lambda": math.nan}),
        lambda r: json.dumps({**r, "lambda": "0.5"}),
    ]
    commands = [
        lambda: invoke(trained, "score", "--mix", "fit", input="the man walks .\n").exit_code,
        lambda: invoke(trained, "sample", "--mix", "fit", "--length", "5", "-q").exit_code,
        lambda: rnngen.compare(checkpoint).mixture.weight,
        lambda: eval_rows(trained)[0]["mixture"]["lambda"],
    ]
    for damage, command in zip(damages, commands, strict=True):
        records = {path: json.loads(path.read_text()) for path in entries}
        for path, record in records.items():
            path.write_text(damage(record))
        assert command() in (0, report["mixture"]["lambda"])
        assert json.loads(entries[0].read_text())["lambda"] == report["mixture"]["lambda"]


def test_eval_says_when_it_scores_the_text_the_weight_was_fit_on(trained, tmp_path):
    # no test split: eval scores the validation split, the very text λ is fit on
    corpus = trained / "synth.txt"  # the shared run's folder is only read
    result = run_cli("train", str(corpus), "--max-steps", "5", "--kind", "char", "--test-frac",
                     "0", "-o", "nosplit/model.safetensors", *SMALL, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report, _ = eval_rows(tmp_path, "nosplit/model.safetensors")
    assert report["data"] == "held-out valid split"
    assert report["mixture"]["scored_on_fit_text"] is True
    table = invoke(tmp_path, "eval", "nosplit/model.safetensors")
    assert "the mixture rows are optimistic" in table.stdout


def test_bad_mix_options_fail_cleanly(trained):
    """A bad value is exit 1; options that contradict each other a usage error, exit 2."""
    bad = [(["eval", "--mix", "2"], 1), (["score", "--mix", "x"], 1),
           (["score", "--ngram", "--mix", "fit"], 2), (["sample", "--ngram", "--mix", "0.5"], 2),
           (["eval", "--mix", "0.5", "--no-mix"], 2)]  # fmt: skip
    for options, code in bad:
        result = run_cli(*options, cwd=trained, input="a line\n")
        assert result.returncode == code, options
        assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_score_with_the_mixture(trained):
    lines = "the man walks .\nthe men walk .\n"
    options = ([], ["--ngram"], ["--mix", "0"], ["--mix", "1"], ["--mix", "fit"])
    runs = [invoke(trained, "score", *option, input=lines) for option in options]
    for result in runs:
        assert result.exit_code == 0, result.stderr
    plain, ngram, zero, one, fitted = runs
    logprob = [[json.loads(line)["logprob"] for line in r.stdout.splitlines()]
               for r in (plain, ngram, zero, one, fitted)]  # fmt: skip
    assert logprob[2] == pytest.approx(logprob[0], abs=1e-9)
    assert logprob[3] == pytest.approx(logprob[1], abs=1e-9)
    assert len(logprob[4]) == 2


def test_sampling_the_mixture_is_reproducible(trained):
    runs = [run_cli("sample", "--mix", "0.5", "--seed", "7", "--length", "60", cwd=trained)
            for _ in range(2)]  # fmt: skip
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
    assert "mixture: λ = 0.5000 (fixed)" in runs[0].stderr


def test_context_orders_depend_on_the_context_only():
    train = np.array([0, 1, 2, 0, 1, 2, 0, 1, 3, 4, 0, 1, 2] * 5)
    ngram = KneserNey.fit(train, 3, 5)
    assert ngram.context_orders(np.array([0, 1, 2, 4, 4, 3, 1])).tolist() == [2, 3, 3, 2, 2, 2]
    # the same context before two different targets: the same order
    a, b = ngram.context_orders(np.array([0, 1, 2])), ngram.context_orders(np.array([0, 1, 4]))
    assert a.tolist() == b.tolist()
    assert ngram.context_orders(np.array([3])).size == 0


def test_the_server_mixes_the_n_gram_and_weight_that_sample_and_eval_use(trained):
    """`rnngen serve`'s requests' `ngram` / `mix` get the n-gram (same cache key) and the
    weight (λ fit as eval fits it) that `rnngen sample --ngram/--mix` builds."""
    import rnngen.api as api
    from rnngen.api.serving import ngram_loader

    report, _ = eval_rows(trained)
    lm = api.load(trained / "checkpoints" / "synth.safetensors", device="cpu")
    sampling = api.sample(lm, n=1, max_tokens=3, seed=1, mix="fit")
    load = ngram_loader(lm, 5)
    ngram, none = load(None)
    _, fitted = load("fit")
    _, fixed = load(0.25)
    assert none is None and fixed == 0.25
    assert fitted == sampling.mixture.weight == report["mixture"]["lambda"]
    assert ngram.stats == sampling.ngram.model.stats
    assert ngram is load(None)[0]  # built once per model
