"""The fixed-window neural LM (Bengio et al. 2003): a model kind that sees its window and nothing
beyond it, behind the same interface as the recurrent models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngen.checkpoint import load_model, read_meta, save_model
from rnngen.config import MAX_WINDOW, ModelConfig, TokenizerConfig, TrainConfig, from_json, to_json
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM, WindowLM, create_model, state_layout, step_state
from rnngen.training.loop import Stopped, Trainer

CPU = torch.device("cpu")
VOCAB = 17


def window_model(window: int = 4, **options) -> RNNLM:
    torch.manual_seed(0)
    config = dict(vocab_size=VOCAB, hidden_size=12, embed_size=8, dropout=0.0, model="window",
                  window=window)  # fmt: skip
    return create_model(ModelConfig(**{**config, **options})).eval()


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_the_config_builds_the_window_model():
    model = window_model(5)
    assert isinstance(model, WindowLM) and isinstance(model, RNNLM)
    assert model.config.describe() == "window 5, 1x12"
    assert state_layout(model.config) == [(4 * 8,)]
    logits, state = model(tokens(3, 7))
    assert logits.shape == (3, 7, VOCAB) and state[0].shape == (1, 3, 4 * 8)


ADAPTIVE = {"softmax": "adaptive", "cutoffs": (4, 10), "embed_size": 16}


@pytest.mark.parametrize("options", [{}, {"tie": False}, {"layers": 3}, {"embed_size": 12},
                                     ADAPTIVE])  # fmt: skip
@pytest.mark.parametrize("window", [1, 2, 6])
def test_log_probabilities_normalize(window, options):
    model = window_model(window, **options)
    logits, _ = model(tokens(2, 9))
    total = torch.logsumexp(torch.log_softmax(logits.double(), dim=-1), dim=-1)
    torch.testing.assert_close(total, torch.zeros_like(total))
    if options.get("softmax") == "adaptive":  # its logits are the log-probabilities already
        torch.testing.assert_close(
            torch.logsumexp(logits, -1), torch.zeros(2, 9), atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("window", [1, 3, 5])
def test_a_token_beyond_the_window_has_no_influence(window):
    """The gradient of a prediction with respect to every input more than window - 1 tokens
    before the last one read is exactly zero, even across a carried state; inside the
    window it is not."""
    model = window_model(window)
    x = tokens(2, 12)
    embedded = []
    embed = model._embed

    def recorded(ids):
        out = embed(ids)
        out.retain_grad()
        embedded.append(out)
        return out

    model._embed = recorded
    _, state = model(x[:, :6])  # the first window; its state carries the last tokens
    logits, _ = model(x[:, 6:], state)
    position = 3  # predict after reading x[:, 6 + 3]
    torch.log_softmax(logits[:, position], -1)[:, 0].sum().backward()
    grads = torch.cat([embedded[0].grad, embedded[1].grad], dim=1)  # (B, 12, E)
    last = 6 + position
    norms = grads.norm(dim=-1)  # (B, 12)
    assert torch.equal(norms[:, : last - window + 1], torch.zeros(2, last - window + 1))
    assert (norms[:, last - window + 1 : last + 1] > 0).all()
    assert torch.equal(norms[:, last + 1 :], torch.zeros(2, 12 - last - 1))  # nor the future


@settings(max_examples=10, deadline=None)
@given(window=st.integers(1, 6), length=st.integers(1, 14), data=st.data())
def test_changing_a_token_beyond_the_window_changes_nothing(window, length, data):
    model = window_model(window)
    x = tokens(1, length + window + 1, seed=length)
    far = data.draw(st.integers(0, length))  # at least `window` tokens before the last read
    y = x.clone()
    y[0, far] = (y[0, far] + 1) % VOCAB
    a, _ = model(x)
    b, _ = model(y)
    assert torch.equal(a[0, far + window :], b[0, far + window :])
    assert not torch.equal(a[0, far], b[0, far])


@settings(max_examples=10, deadline=None)
@given(window=st.integers(1, 6), cuts=st.lists(st.integers(1, 19), max_size=4))
def test_state_carry_equals_one_long_pass(window, cuts):
    model = window_model(window)
    x = tokens(3, 20)
    whole, whole_state = model(x)
    pieces, state, start = [], None, 0
    for stop in [*sorted(set(cuts)), 20]:
        logits, state = model(x[:, start:stop], state)
        pieces.append(logits)
        start = stop
    torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[0], whole_state[0])


@pytest.mark.parametrize("window", [1, 4])
def test_the_step_is_the_forward_pass(window):
    model = window_model(window, layers=2)
    x = tokens(3, 10)
    logits, state = model(x)
    stepped, step = [], None
    for t in range(10):
        out, step = model.step(x[:, t], step)
        stepped.append(out)
    torch.testing.assert_close(torch.stack(stepped, 1), logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(step[0], step_state(state)[0])


@pytest.mark.parametrize(
    "window, message",
    [(0, "between 1 and"), (-3, "between 1 and"), (MAX_WINDOW + 1, "between 1 and"),
     (2.5, "whole number"), (True, "whole number"), ("8", "whole number")],
)  # fmt: skip
def test_bad_windows_are_one_clean_error(window, message):
    with pytest.raises(RnngenError, match=message) as caught:
        ModelConfig(vocab_size=VOCAB, model="window", window=window)
    assert "\n" not in str(caught.value) and "--window" in str(caught.value)


@pytest.mark.parametrize(
    "options, message",
    [({"window": 4}, "--model window"), ({"model": "ffn"}, "unknown model"),
     ({"model": "window", "window": 4, "skip": "residual"}, "no recurrent stack"),
     ({"model": "window", "window": 4, "weight_drop": 0.5}, "--weight-drop")],
)  # fmt: skip
def test_options_that_do_not_fit_the_window_model(options, message):
    with pytest.raises(RnngenError, match=message):
        ModelConfig(vocab_size=VOCAB, **options)


def test_checkpoint_round_trip(tmp_path):
    tokenizer = train_tokenizer(["the cat sat on the mat", "a dog"], TokenizerConfig(kind="char"))
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embed_size=8,
                         dropout=0.0, model="window", window=3)  # fmt: skip
    model = create_model(config).eval()
    path = tmp_path / "window.safetensors"
    save_model(path, model, tokenizer, {"metrics": {"valid_loss": 1.0}})
    loaded, _, meta = load_model(path)
    assert isinstance(loaded, WindowLM) and loaded.config == config
    assert json.loads(meta["model_config"])["window"] == 3
    assert from_json(ModelConfig, to_json(config)) == config
    assert read_meta(path)["format"] == "rnngen/1"
    x = torch.tensor([tokenizer.encode("the cat sat")])
    torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)


def test_resume_is_bitwise_identical():
    """Training carries the window's state from window to window, saves it in the resume
    file and continues exactly where it stopped."""
    ids = np.random.default_rng(0).integers(0, VOCAB, 3000).astype(np.uint16)
    valid = np.random.default_rng(1).integers(0, VOCAB, 300).astype(np.uint16)
    config = TrainConfig(batch_size=4, seq_len=8, max_steps=30, log_every=1, lr=3e-3)

    def fresh():
        return window_model(3, dropout=0.2).train()

    straight = Trainer(fresh(), ids, valid, config, CPU, "fp32")
    torch.manual_seed(5)
    list(straight.run())
    first = Trainer(fresh(), ids, valid, config, CPU, "fp32")
    torch.manual_seed(5)
    for event in first.run():
        if getattr(event, "step", 0) >= 13:
            first.request_stop()
        if isinstance(event, Stopped):
            break
    tensors, info = first.resume_state()
    assert tensors["state.0.0"].shape == (1, 4, 2 * 8)
    torch.manual_seed(999)
    second = Trainer(fresh(), ids, valid, config, CPU, "fp32",
                     resume=(tensors, json.loads(json.dumps(info))))  # fmt: skip
    list(second.run())
    for (name, a), b in zip(straight.model.state_dict().items(),
                            second.model.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), name


# Through the door users take: `rnngen train --model window` (here the API's train, the same
# options), then everything that reads a checkpoint.

TINY = dict(kind="char", layers=1, hidden=16, embed=8, batch_size=4, seq_len=16, max_steps=4,
            seed=3, device="cpu", precision="fp32", threads=1)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import tiny_text
    from rnngen.training.run import train

    folder = tmp_path_factory.mktemp("window")
    (folder / "corpus.txt").write_text(tiny_text(300))
    out = folder / "w.safetensors"
    train(folder / "corpus.txt", output=out, model="window", window=3, **TINY)
    return out


def test_a_trained_window_model_loads_samples_scores_and_evals(trained):
    import rnngen

    lm = rnngen.load(trained, device="cpu")
    assert isinstance(lm.model, WindowLM) and lm.config.window == 3
    text = "".join(lm.generate("the cat", temperature=0.8, max_tokens=30, seed=1))
    assert text == "".join(lm.generate("the cat", temperature=0.8, max_tokens=30, seed=1))
    assert len(text) > 0
    [score] = lm.score(["the cat sat on the mat."])
    assert score.tokens == 24 and score.logprob < 0
    report = rnngen.compare(lm, ngram_order=3)  # with the RNN + n-gram mixture row
    names = [row.name for row in report.rows]
    assert names == ["window 3, 1x16", "kneser-ney 3-gram", "unigram", "window 3, 1x16 + 3-gram"]
    assert len({row.tokens for row in report.rows}) == 1  # the same targets for every row


def test_the_cli_shows_and_samples_a_window_model(trained):
    from typer.testing import CliRunner

    from rnngen.cli import app

    info = CliRunner().invoke(app, ["info", str(trained)])
    assert info.exit_code == 0 and "window 3, 1x16" in info.output
    shown = CliRunner().invoke(app, ["info", str(trained), "--json"])
    assert json.loads(shown.stdout)["model_config"]["model"] == "window"
    sample = CliRunner().invoke(app, ["sample", str(trained), "--temp", "0", "--length", "12",
                                      "--device", "cpu", "-q"])  # fmt: skip
    assert sample.exit_code == 0, sample.output


def test_gradients_beyond_the_window_are_zero(trained):
    from rnngen.scoring.gradients import gradient_flow

    model, tokenizer, _ = load_model(trained)
    ids = np.array(tokenizer.encode("the cat sat on the mat and the dog ran to the park. " * 3))
    flow = gradient_flow(model, ids, CPU, max_lag=6, positions=8, warmup=4)
    # lag 0 is the token just read: the window of 3 reads lags 0, 1 and 2
    assert (flow.input_norm[:3] > 0).all() and (flow.input_norm[3:] == 0).all()


def test_training_resumes(trained, tmp_path):
    import shutil

    from rnngen.training.run import train

    for path in trained.parent.iterdir():
        if path.name.startswith("w.") or path.name == "corpus.txt":
            shutil.copy(path, tmp_path / path.name)
    result = train(tmp_path / "corpus.txt", output=tmp_path / "w.safetensors", resume=True,
                   model="window", window=3, **{**TINY, "max_steps": 6})  # fmt: skip
    assert result.steps == 6
    assert load_model(tmp_path / "w.safetensors")[0].config.window == 3


@pytest.mark.parametrize(
    "extra, fragment",
    [(["--model", "window", "--window", "0"], "--window must be between 1 and"),
     (["--window", "4"], "--window is the window model's"),
     (["--model", "window", "--cell", "gru"], "the window model has none"),
     (["--model", "window", "--skip", "dense"], "no recurrent stack"),
     (["--model", "ffn"], "unknown model")],
)  # fmt: skip
def test_bad_window_options_are_one_line(tmp_path, extra, fragment):
    from typer.testing import CliRunner

    from rnngen.cli import app

    (tmp_path / "c.txt").write_text("the cat sat.\n" * 50)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "c.txt"), "-o",
                                      str(tmp_path / "m.safetensors"), *extra])  # fmt: skip
    assert result.exit_code == 1 and fragment in result.stderr, result.output
    assert (
        len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.safetensors").exists()
    )


def test_a_window_model_exports_to_onnx(trained, tmp_path):
    """Its state (the last window - 1 embeddings) is the ONNX models' state; the export
    verifies itself against torch on held-out text."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import rnngen

    rnngen.export(trained, tmp_path / "onnx")  # an error if onnxruntime disagrees with torch
    runtime = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert runtime["state"]["shape"] == [1, 1, "batch", 2 * 8]  # window 3, embed 8


def test_a_window_of_one_token_is_no_onnx_model():
    pytest.importorskip("onnxscript")
    from rnngen.onnx_export.models import export_models

    with pytest.raises(RnngenError, match="--window 2 or more"):
        export_models(window_model(1))
