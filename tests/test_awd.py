"""AWD-LSTM's regularizers, weight averaging, variable BPTT and the preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError
from rnngen.model import RNNLM, keep_mask
from rnngen.training.loop import Evaluation, Stopped, Trainer
from rnngen.training.options import PRESETS, configs

CPU = torch.device("cpu")


def model_with(seed=0, **options):
    torch.manual_seed(seed)
    base = dict(vocab_size=20, hidden_size=16, embed_size=16, layers=2, dropout=0.0)
    return RNNLM(ModelConfig(**{**base, **options}))


def test_weight_drop_masks_the_recurrent_matrix_in_training_only():
    model = model_with(weight_drop=0.5)
    plain = model_with(weight_drop=0.0)  # the same weights (same seed)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(20, (3, 9))
    model.train()
    torch.manual_seed(1)
    dropped, _ = model(x)
    assert not torch.allclose(dropped, plain.train()(x)[0])  # training: masked
    # the same mask by hand: dropout of the hidden matrix, then the layer's own kernel
    torch.manual_seed(1)
    masked = {}
    for i, layer in enumerate(plain.layers):
        weight = layer.weight_hh_l0
        masked[i] = weight * keep_mask(weight.shape, 0.5, weight)
    with torch.no_grad():
        for i, layer in enumerate(plain.layers):
            layer.weight_hh_l0.copy_(masked[i])
    torch.testing.assert_close(dropped, plain(x)[0])
    model.eval()  # evaluation: the raw weights, as without weight drop
    torch.testing.assert_close(model(x)[0], model_with(weight_drop=0.0).eval()(x)[0])
    for name, tensor in model.state_dict().items():  # the parameters were never masked
        assert torch.equal(tensor, saved[name]), name


def test_weight_drop_reaches_the_gradient_of_the_raw_weights():
    model = model_with(weight_drop=0.5).train()
    x, y = torch.randint(20, (2, 6)), torch.randint(20, (2, 6))
    logp, _, _ = model(x, targets=y)
    (-logp.mean()).backward()
    grad = model.layers[0].weight_hh_l0.grad
    assert grad is not None and 0 < (grad == 0).float().mean() < 1  # dropped entries get none


@pytest.mark.parametrize("position", ["input", "hidden", "output"])
def test_locked_dropout_uses_one_mask_per_sequence(position):
    model = model_with(locked_dropout=True, **{f"dropout_{position}": 0.5}).train()
    x = torch.ones(4, 12, 16)
    out = model._drop(x, position)  # (B, T, D)
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert not torch.equal(out[0], out[1])  # each sequence its own
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert 0.3 < (model._drop(torch.ones(64, 8, 16), position) == 0).float().mean() < 0.7
    unlocked = model_with(**{f"dropout_{position}": 0.5}).train()._drop(x, position)
    assert not torch.equal(unlocked, unlocked[:, :1].expand_as(unlocked))
    other = {"input", "hidden", "output"} - {position}
    for name in other:  # each position has its own rate (here the default, 0)
        assert torch.equal(model._drop(x, name), x)


def test_activation_penalties_are_ar_and_tar_of_the_top_layer():
    model = model_with().train()
    x, y = torch.randint(20, (2, 7)), torch.randint(20, (2, 7))
    top, _ = model.features(x)  # (B, T, H); no dropout here, so output == top
    _, _, penalty = model(x, targets=y, ar=2.0, tar=0.5)
    expected = 2.0 * top.pow(2).mean() + 0.5 * (top[:, 1:] - top[:, :-1]).pow(2).mean()
    torch.testing.assert_close(penalty, expected)
    assert model(x, targets=y)[2].item() == 0.0


@settings(max_examples=20, deadline=None)
@given(first=st.integers(1, 30), second=st.integers(1, 30), cell=st.sampled_from(["lstm", "gru"]))
def test_windows_of_any_lengths_carry_the_state_exactly(first, second, cell):
    model = model_with(cell=cell).eval()
    x = torch.randint(20, (2, first + second), generator=torch.Generator().manual_seed(first))
    y = torch.randint(20, (2, first + second), generator=torch.Generator().manual_seed(second))
    whole, _ = model.score(x, y)
    a, state = model.score(x[:, :first], y[:, :first])
    b, _ = model.score(x[:, first:], y[:, first:], state)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, rtol=1e-5, atol=1e-5)


def train_config(**kw):
    base = dict(batch_size=4, seq_len=12, lr=3e-3, warmup_steps=5, max_steps=40, log_every=5)
    return TrainConfig(**{**base, **kw})


def ids(n=4000, seed=0):
    return np.random.default_rng(seed).integers(0, 20, n).astype(np.uint16)


def test_variable_bptt_draws_lengths_that_tile_the_streams():
    def window_lengths():
        trainer = Trainer(model_with(), ids(), ids(300, 1), train_config(variable_bptt=True),
                          CPU, "fp32")  # fmt: skip
        trainer.model.train()
        lengths = []
        for _ in range(40):
            before = trainer.position
            trainer._train_step()
            lengths.append(trainer.position - before)  # contiguous: each starts where one ended
        return lengths

    lengths = window_lengths()
    assert len(set(lengths)) > 3 and min(lengths) >= 5  # lengths vary around --seq-len
    assert abs(np.mean(lengths) - 12) < 3
    assert window_lengths() == lengths  # drawn from (seed, step): a resumed run draws the same


def test_averaging_starts_when_validation_stops_improving_and_is_what_is_kept():
    valid = ids(300, 1)
    trainer = Trainer(model_with(), ids(), valid, train_config(average=True, lr=0.05,
                      max_steps=60), CPU, "fp32")  # fmt: skip
    events = list(trainer.run())
    evals = [e for e in events if isinstance(e, Evaluation)]
    # random ids: validation stops improving early, and averaging begins
    assert trainer.average is not None
    assert trainer.eval_model is trainer.average.module
    assert int(trainer.average.n_averaged) > 1
    differs = any(not torch.equal(a, b) for a, b in zip(trainer.model.state_dict().values(),
                  trainer.eval_model.state_dict().values(), strict=False))  # fmt: skip
    assert differs and len(evals) >= 2


ALL_OPTIONS = dict(
    model=dict(dropout=0.2, dropout_input=0.3, dropout_hidden=0.1, locked_dropout=True,
               weight_drop=0.4, embed_dropout=0.1, softmax="adaptive", cutoffs=(5, 12)),
    train=dict(ar=1.0, tar=0.5, variable_bptt=True, average=True, lr=0.05),
)  # fmt: skip


def test_resume_is_bitwise_with_every_new_option_on():
    train, valid = ids(), ids(300, 1)
    cfg = train_config(max_steps=48, **ALL_OPTIONS["train"])

    def fresh(**resume):
        return Trainer(model_with(**ALL_OPTIONS["model"]), train, valid, cfg, CPU, "fp32",
                       **resume)  # fmt: skip

    straight = fresh()
    torch.manual_seed(5)
    list(straight.run())
    assert straight.average is not None  # the run exercised averaging too
    first = fresh()
    torch.manual_seed(5)
    for event in first.run():
        if getattr(event, "step", 0) >= 29:
            first.request_stop()
        if isinstance(event, Stopped):
            break
    assert first.average is not None  # stopped while averaging: the average must resume
    tensors, info = first.resume_state()
    torch.manual_seed(999)
    second = fresh(resume=(tensors, json.loads(json.dumps(info))))
    list(second.run())
    for (name, a), b in zip(straight.model.state_dict().items(),
                            second.model.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.eval_model.state_dict().items(),
                            second.eval_model.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name


def test_the_preset_sets_awd_and_given_options_win():
    config, options = configs(preset="awd")
    awd = PRESETS["awd"]
    assert (options["layers"], options["hidden_size"], options["embed_size"]) == (3, 1150, 400)
    assert options["weight_drop"] == 0.5 and options["locked_dropout"]
    assert config.variable_bptt and config.average and config.ar == awd["ar"]
    assert config.seq_len == 70
    config, options = configs(preset="awd", hidden=256, weight_drop=0.2, seq_len=35)
    assert options["hidden_size"] == 256 and options["weight_drop"] == 0.2
    assert config.seq_len == 35
    with pytest.raises(RnngenError, match="--preset must be one of"):
        configs(preset="nope")
    with pytest.raises(RnngenError, match="--preset sets the model's size"):
        configs(preset="awd", size="small")
    with pytest.raises(RnngenError, match="--weight-drop"):
        configs(weight_drop=1.5)
    with pytest.raises(RnngenError, match="--softmax"):
        configs(softmax="sparse")
