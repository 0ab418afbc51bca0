"""Skip connections between stacked layers: residual, highway and dense; old checkpoints
(written before `skip` existed) load unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import OLD
from rnngen.checkpoint import load_model, read_meta
from rnngen.config import SKIPS, ModelConfig, TrainConfig, from_json
from rnngen.errors import RnngenError
from rnngen.model import RNNLM, step_state
from rnngen.training.loop import Stopped, Trainer

CPU = torch.device("cpu")
VOCAB = 13


def stack(skip: str, layers: int, cell: str = "lstm", embed: int = 6, **options) -> RNNLM:
    torch.manual_seed(0)
    fields = dict(vocab_size=VOCAB, cell=cell, layers=layers, hidden_size=8, embed_size=embed,
                  dropout=0.0, skip=skip)  # fmt: skip
    config = ModelConfig(**{**fields, **options})
    return RNNLM(config).eval()


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("layers", [1, 2, 3, 5])
@pytest.mark.parametrize("cell, embed, tie", [("lstm", 6, True), ("gru", 8, True),
                                              ("rnn", 8, False)])  # fmt: skip
def test_shapes_and_the_step_for_every_depth(skip, layers, cell, embed, tie):
    model = stack(skip, layers, cell, embed, tie=tie)
    x = torch.randint(0, VOCAB, (3, 7), generator=torch.Generator().manual_seed(1))
    logits, state = model(x)
    assert logits.shape == (3, 7, VOCAB) and len(state) == layers
    top, _ = model.features(x)
    assert top.shape == (3, 7, 8 * layers if skip == "dense" else 8) == (3, 7, model.top_size())
    sizes = model.input_sizes()
    assert [layer.input_size for layer in model.layers] == sizes
    if skip == "dense":
        assert sizes == [embed + 8 * i for i in range(layers)]
    if skip == "highway":  # a gate wherever the input is as wide as the output
        assert sorted(model.gates) == [str(i) for i, s in enumerate(sizes) if s == 8]
    stepped, step = [], None
    for t in range(7):
        out, step = model.step(x[:, t], step)
        stepped.append(out)
    torch.testing.assert_close(torch.stack(stepped, 1), logits, rtol=1e-4, atol=1e-5)
    for a, b in zip(step, step_state(state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # carrying the state from window to window is one long pass
    first, carried = model(x[:, :3])
    second, _ = model(x[:, 3:], carried)
    torch.testing.assert_close(torch.cat([first, second], 1), logits, rtol=1e-5, atol=1e-6)


def test_highway_gates_start_by_carrying_the_input():
    model = stack("highway", 3, embed=8)
    for gate in model.gates.values():
        assert torch.all(gate.bias == -1.0)


def test_one_layer_skips_are_the_plain_layer():
    """With one layer and the embedding narrower than the layer, no skip has anything to do."""
    x = torch.randint(0, VOCAB, (2, 5))
    plain = stack("none", 1)(x)[0]
    for skip in ("residual", "highway", "dense"):
        torch.testing.assert_close(stack(skip, 1)(x)[0], plain, rtol=0, atol=0)


@pytest.mark.parametrize(
    "fields, skip, residual",
    [({}, "none", False), ({"residual": True}, "residual", True),
     ({"skip": "residual"}, "residual", True), ({"skip": "highway"}, "highway", False),
     ({"skip": "dense", "residual": False}, "dense", False)],
)  # fmt: skip
def test_residual_is_the_older_spelling_of_skip_residual(fields, skip, residual):
    config = ModelConfig(vocab_size=VOCAB, **fields)
    assert (config.skip, config.residual) == (skip, residual)
    again = from_json(ModelConfig, json.dumps({"vocab_size": VOCAB, **fields}))
    assert again == config


@pytest.mark.parametrize("fields, message", [({"skip": "highway", "residual": True}, "contradicts"),
                                             ({"skip": "sideways"}, "unknown skip")])  # fmt: skip
def test_bad_skips_are_one_clean_error(fields, message):
    with pytest.raises(RnngenError, match=message):
        ModelConfig(vocab_size=VOCAB, **fields)


def test_an_old_checkpoint_loads_unchanged():
    """Written before `skip`, `model` and `window` existed: its config has none of them."""
    saved = json.loads(read_meta(OLD)["model_config"])
    assert not {"skip", "model", "window"} & set(saved)
    model, tokenizer, _ = load_model(OLD)
    assert (model.config.skip, model.config.residual) == ("none", saved["residual"])
    assert model.config.model == "rnn" and type(model) is RNNLM
    from safetensors.torch import load_file

    weights = load_file(str(OLD))
    assert set(weights) == set(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


@pytest.mark.parametrize("skip", ["highway", "dense"])
def test_resume_is_bitwise_identical(skip):
    ids = np.random.default_rng(0).integers(0, VOCAB, 3000).astype(np.uint16)
    valid = np.random.default_rng(1).integers(0, VOCAB, 300).astype(np.uint16)
    config = TrainConfig(batch_size=4, seq_len=8, max_steps=24, log_every=1, lr=3e-3)

    def fresh():
        return stack(skip, 3, embed=8, dropout=0.2).train()

    straight = Trainer(fresh(), ids, valid, config, CPU, "fp32")
    torch.manual_seed(5)
    list(straight.run())
    first = Trainer(fresh(), ids, valid, config, CPU, "fp32")
    torch.manual_seed(5)
    for event in first.run():
        if getattr(event, "step", 0) >= 11:
            first.request_stop()
        if isinstance(event, Stopped):
            break
    tensors, info = first.resume_state()
    torch.manual_seed(999)
    second = Trainer(fresh(), ids, valid, config, CPU, "fp32",
                     resume=(tensors, json.loads(json.dumps(info))))  # fmt: skip
    list(second.run())
    for (name, a), b in zip(straight.model.state_dict().items(),
                            second.model.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "options, skip",
    [({}, "none"), ({"residual": True}, "residual"), ({"skip": "residual"}, "residual"),
     ({"skip": "highway"}, "highway"), ({"skip": "dense", "residual": False}, "dense")],
)  # fmt: skip
def test_the_options_reach_the_model(options, skip):
    """`rnngen train --skip S` and `rnngen.train(..., skip=S)` take this one path."""
    from rnngen.training.options import complete, configs

    _, model = configs(layers=3, hidden=8, **options)
    assert ModelConfig(vocab_size=VOCAB, **{**complete(model), "softmax": "full"}).skip == skip


@pytest.mark.parametrize("skip, chosen", [("none", "residual"), ("highway", "highway"),
                                          ("dense", "dense")])  # fmt: skip
def test_automatic_sizing_keeps_the_chosen_skip(skip, chosen):
    """A stack that sizing chooses gets residual skips unless the user chose others."""
    from rnngen.training.sizing import candidate_config

    assert candidate_config(3, 8, VOCAB, skip=skip).skip == chosen
    assert candidate_config(1, 8, VOCAB, skip=skip).skip == skip


def test_a_trained_highway_stack_loads_and_scores(tmp_path):
    import rnngen
    from conftest import tiny_text
    from rnngen.training.run import train

    (tmp_path / "corpus.txt").write_text(tiny_text(200))
    out = tmp_path / "h.safetensors"
    train(tmp_path / "corpus.txt", output=out, skip="highway", layers=2, hidden=8, embed=8,
          kind="char", batch_size=4, seq_len=16, max_steps=3, seed=3, device="cpu",
          precision="fp32", threads=1)  # fmt: skip
    lm = rnngen.load(out, device="cpu")
    assert lm.config.skip == "highway" and sorted(lm.model.gates) == ["0", "1"]
    [score] = lm.score(["the cat sat."])
    assert score.tokens == 13 and score.logprob < 0
    assert [row.name for row in rnngen.compare(lm, ngram_order=2, mix=None).rows][0] == (
        "lstm 2x8, highway"
    )


@pytest.mark.parametrize("skip", SKIPS)
def test_gradient_flow_through_the_skips_matches_autograd(skip):
    """`rnngen gradients` unrolls the model with RNNLM.step; an ordinary forward pass through
    the skips gives the same input gradients."""
    import torch.nn.functional as F

    from rnngen.scoring.gradients import gradient_flow

    model = stack(skip, 3, embed=8)
    ids = np.random.default_rng(0).integers(0, VOCAB, 12)
    flow = gradient_flow(model, ids, CPU, max_lag=12, positions=100, batch_size=4)
    expected = np.zeros(13)
    for t in range(1, 12):
        x = torch.from_numpy(ids[:t]).long()[None]  # (1, t)
        e = model.embedding(x).detach().requires_grad_(True)  # (1, t, E)
        model._embed = lambda tokens, e=e: e
        top, _ = model.features(x)
        del model._embed
        logp = F.log_softmax(model.logits(top[:, -1])[0], dim=-1)[ids[t]]
        (grad,) = torch.autograd.grad(logp, [e])
        expected[:t] += grad[0].norm(dim=-1).flip(0).numpy()  # lag 0 first
    expected /= np.maximum(flow.counts, 1)
    np.testing.assert_allclose(flow.input_norm, expected, rtol=1e-4, atol=1e-9)
    assert np.isfinite(flow.hidden_norm).all() and (flow.hidden_norm[:11] > 0).all()
