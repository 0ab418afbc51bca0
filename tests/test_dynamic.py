"""Dynamic evaluation: honest predictions (scored before any update that saw them), and the
model on disk never changes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from conftest import run_cli, tiny_text
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.scoring.dynamic import Adaptation, DynamicConfig, dynamic_logprobs
from rnngen.scoring.logprobs import model_logprobs

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    text = tiny_text(120)
    tokenizer = train_tokenizer(text.splitlines(), TokenizerConfig(kind="char"))
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=24, embed_size=24))
    half = tokenizer.encode_array(text[:1500]).astype(np.int64)
    return model.eval(), half


def test_a_token_is_scored_before_any_update_that_saw_it(setup):
    model, half = setup
    config = DynamicConfig(learning_rate=0.5, segment=16)
    repeated = np.concatenate([half, half[1:]])  # the second half repeats the first
    first_alone = dynamic_logprobs(model, half, CPU, config)
    both = dynamic_logprobs(model, repeated, CPU, config)
    n = len(half) - 1
    # the first half's scores cannot depend on the text after it
    assert np.allclose(both[:n], first_alone, atol=1e-6)
    # the first segment is scored by the trained model itself, as static eval does
    static = model_logprobs(model, repeated, CPU)
    assert np.allclose(both[:16], static[:16], atol=1e-5)
    assert not np.allclose(both[16:n], static[16:n], atol=1e-3)  # later ones have adapted
    # having read it once, the adapted model predicts the repeat better than the static one
    assert both[n:].mean() > static[n:].mean() + 0.05


def test_the_callers_model_is_unchanged(setup):
    model, half = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Adaptation(model, CPU, DynamicConfig(learning_rate=1.0, segment=8)).read(half)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_decay_pulls_back_towards_the_trained_weights(setup):
    model, half = setup
    free = Adaptation(model, CPU, DynamicConfig(learning_rate=0.5, segment=16))
    held = Adaptation(model, CPU, DynamicConfig(learning_rate=0.5, segment=16, decay=0.5))
    free.read(half), held.read(half)

    def distance(adaptation):
        return sum(float((p - q).detach().norm()) for p, q in
                   zip(adaptation.model.parameters(), model.parameters(), strict=True))  # fmt: skip

    assert 0 < distance(held) < distance(free)


@pytest.mark.parametrize("options", [{"learning_rate": 0}, {"segment": 0}, {"decay": 1.0},
                                     {"learning_rate": float("nan")}])  # fmt: skip
def test_bad_settings_are_refused(options):
    with pytest.raises(RnngenError):
        DynamicConfig(**options)


def test_eval_and_score_dynamic_leave_the_checkpoint_byte_identical(tmp_path):
    corpus = tmp_path / "synth.txt"
    assert run_cli("synth", "-o", str(corpus), "--lines", "300", "-q").returncode == 0
    small = ["--hidden", "32", "--embed", "32", "--layers", "1", "--batch-size", "8", "-q"]
    assert run_cli("train", str(corpus), "--max-steps", "20", "--kind", "char", *small,
                   cwd=tmp_path).returncode == 0  # fmt: skip
    checkpoint = next((tmp_path / "checkpoints").glob("*.safetensors"))
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    result = run_cli("eval", "--json", "--dynamic", "--dynamic-segment", "16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert {"lstm 1x32 dynamic", "lstm 1x32 dynamic + 5-gram"} <= set(rows)
    assert len({row["tokens"] for row in rows.values()}) == 1  # identical targets
    assert report["dynamic"] == {"learning_rate": 0.1, "segment": 16, "decay": 0.0}
    scored = run_cli("score", "--dynamic", "--mix", "0.2", cwd=tmp_path, input="the man .\n" * 3)
    assert scored.returncode == 0, scored.stderr
    assert len(scored.stdout.splitlines()) == 3
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest
    bad = run_cli("eval", "--dynamic", "--dynamic-lr", "-1", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --dynamic-lr")
