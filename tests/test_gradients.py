"""`rnngen gradients`: the gradient of log p(x_t | x_<t) with respect to what came k back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import run_cli, tiny_text
from rnngen.cli import app
from rnngen.config import ModelConfig
from rnngen.model import RNNLM
from rnngen.scoring.gradients import gradient_flow, target_positions

CPU = torch.device("cpu")


def tiny_model(cell: str = "lstm", layers: int = 2, residual: bool = False) -> RNNLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=11, cell=cell, layers=layers, hidden_size=8, embed_size=8,
                         dropout=0.0, residual=residual)  # fmt: skip
    return RNNLM(config).eval()


def random_ids(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 11, size=n)


def direct_norms(model: RNNLM, ids: np.ndarray, t: int) -> tuple[np.ndarray, float]:
    """For target t: |d log p / d e_j| for every input j (newest first), and |d log p / d h|
    at the last input over all layers, from one ordinary full-sequence forward pass."""
    x = torch.from_numpy(ids[:t]).long()[None]  # (1, t)
    e = model.embedding(x).detach().requires_grad_(True)  # (1, t, E)
    outputs, h = [], e
    for layer in model.layers:
        h, _ = layer(h)  # (1, t, H)
        outputs.append(h)
    logp = F.log_softmax(model.logits(h[:, -1:])[0, 0], dim=-1)[ids[t]]
    grads = torch.autograd.grad(logp, [e, *outputs])
    by_input = grads[0][0].norm(dim=-1).flip(0).numpy()  # (t,) lag 0 first
    at_last = float(sum(g[0, -1].pow(2).sum() for g in grads[1:]).sqrt())
    return by_input, at_last


def test_matches_a_direct_autograd_computation():
    model, ids = tiny_model("lstm", layers=2), random_ids(16)
    flow = gradient_flow(model, ids, CPU, max_lag=20, positions=100, batch_size=4)
    assert flow.positions == 15 and flow.counts[0] == 15  # every target t = 1..15
    inputs, hidden = np.zeros(21), 0.0
    for t in range(1, 16):
        by_input, at_last = direct_norms(model, ids, t)
        inputs[: len(by_input)] += by_input
        hidden += at_last
    counts = np.maximum(flow.counts, 1)
    np.testing.assert_allclose(flow.input_norm, inputs / counts, rtol=1e-4, atol=1e-9)
    assert flow.hidden_norm[0] == pytest.approx(hidden / 15, rel=1e-4)


def test_lags_beyond_the_text_are_zero():
    flow = gradient_flow(tiny_model("gru", layers=1), random_ids(12), CPU, max_lag=30)
    assert (flow.counts[11:] == 0).all() and (flow.input_norm[11:] == 0).all()
    assert (flow.hidden_norm[11:] == 0).all()
    assert (flow.input_norm[:11] > 0).all() and (flow.counts[:11] > 0).all()


def test_a_vanilla_rnn_with_small_recurrent_weights_forgets():
    model = tiny_model("rnn", layers=1)
    with torch.no_grad():
        model.layers[0].weight_hh_l0.mul_(0.2)
    flow = gradient_flow(model, random_ids(400), CPU, max_lag=12, positions=64)
    relative = flow.input_relative
    assert (np.diff(relative[1:8]) < 0).all()  # falls at every step back...
    assert relative[8] < 1e-5 * relative[1]  # ...geometrically: many orders of magnitude
    assert (np.diff(relative[1:]) <= 0).all()  # (fp32 may reach exactly 0)


def test_long_texts_use_full_windows_only():
    targets = target_positions(n_ids=1000, max_lag=200, positions=50)
    assert len(targets) == 50 and targets.min() == 201 and targets.max() == 999


def test_residual_stacks_and_warm_states_run(tmp_path):
    flow = gradient_flow(tiny_model("lstm", 3, residual=True), random_ids(600), CPU,
                         max_lag=10, positions=20, warmup=100)  # fmt: skip
    assert flow.input_relative[0] == 1.0 and np.isfinite(flow.hidden_relative).all()


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    from rnngen.checkpoint import save_model
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer

    text = tiny_text(60)
    tokenizer = train_tokenizer(text.splitlines(), TokenizerConfig(kind="char"))
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, cell="rnn", hidden_size=16,
                              embed_size=16))  # fmt: skip
    path = tmp_path / "rnn.safetensors"
    save_model(path, model, tokenizer, {})
    (tmp_path / "text.txt").write_text(text)
    return path


def test_cli_json_table_and_plot(checkpoint, tmp_path):
    text, figure = tmp_path / "text.txt", tmp_path / "flow.png"
    common = ("gradients", str(checkpoint), "--data", str(text), "-k", "12", "--positions", "16")
    result = run_cli(*common, "--json", "--plot", str(figure))
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["checkpoints"]
    assert entry["label"] == "rnn 1x16 char" and entry["positions"] == 16
    assert entry["lags"] == list(range(13)) and entry["input_relative"][0] == 1.0
    assert figure.read_bytes()[:4] == b"\x89PNG"
    table = CliRunner().invoke(app, [*common, "-q"])
    assert table.exit_code == 0 and table.stderr == ""
    assert "rnn input" in table.stdout and "11-12" in table.stdout


@pytest.mark.parametrize(
    "extra, message",
    [(["-k", "-1"], "--max-lag"), (["--plot", "missing/x.png"], "does not exist")],
)
def test_cli_bad_options_are_one_line(checkpoint, tmp_path, extra, message):
    args = ["gradients", str(checkpoint), "--data", str(tmp_path / "text.txt"), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
