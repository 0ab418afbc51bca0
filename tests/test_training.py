"""Training: the library's invariants, then the command's behaviour."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import run_cli, tiny_text
from rnngen.checkpoint import atomic_write, load_model, save_model
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.training.loop import Evaluation, Finished, Rollback, Stopped, Trainer

CPU = torch.device("cpu")


def tiny_model(cell="lstm", layers=2, residual=False, vocab=20, **kw):
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=vocab,
        cell=cell,
        layers=layers,
        hidden_size=32,
        embed_size=32,
        dropout=kw.pop("dropout", 0.0),
        embed_dropout=kw.pop("embed_dropout", 0.0),
        residual=residual,
        **kw,
    )
    return RNNLM(config)


def random_ids(n=4000, vocab=20, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, n).astype(np.uint16)


def run_to_end(trainer):
    return list(trainer.run())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_overfits_one_batch(cell):
    model = tiny_model(cell)
    x = torch.randint(0, 20, (4, 16), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(250):
        logits, _ = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), x[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("residual", [False, True])
def test_state_carry_equals_one_pass(cell, residual):
    model = tiny_model(cell, layers=3, residual=residual).eval()
    x = torch.randint(0, 20, (3, 24))
    whole, _ = model(x)
    first, state = model(x[:, :10])
    second, _ = model(x[:, 10:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-5, atol=1e-5)


def test_tied_weights_are_one_tensor_and_projection_when_sizes_differ():
    model = RNNLM(ModelConfig(vocab_size=30, hidden_size=48, embed_size=16, tie=True))
    names = set(model.state_dict())
    assert not any(n.startswith("head") for n in names) and "projection.weight" in names
    logits, _ = model(torch.zeros(2, 5, dtype=torch.long))
    assert logits.shape == (2, 5, 30)  # (B, T, V)
    untied = RNNLM(ModelConfig(vocab_size=30, hidden_size=48, embed_size=16, tie=False))
    assert "head.weight" in untied.state_dict()


def test_clipping_bounds_the_norm():
    model = tiny_model()
    x = torch.randint(0, 20, (4, 16))
    logits, _ = model(x[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 20), x[:, 1:].reshape(-1)) * 1e4
    loss.backward()
    before = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    after = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert before > 0.5 and after == pytest.approx(0.5, rel=1e-4)


def config(**kw):
    base = dict(batch_size=4, seq_len=16, lr=3e-3, warmup_steps=5, max_steps=30, log_every=5)
    return TrainConfig(**{**base, **kw})


def test_trainer_reports_and_improves():
    pattern = (np.arange(4000) % 7).astype(np.uint16)  # fully predictable after one token
    trainer = Trainer(
        tiny_model(), pattern, pattern[:300], config(max_steps=80, lr=1e-2), CPU, "fp32"
    )
    events = run_to_end(trainer)
    evals = [e for e in events if isinstance(e, Evaluation)]
    assert len(evals) == 10 and isinstance(events[-1], Finished)
    assert evals[-1].valid_loss < evals[0].valid_loss
    assert evals[-1].valid_loss < 1.0  # far below the 1.95 nats of guessing among 7


def test_resume_is_bitwise_identical():
    ids, valid = random_ids(), random_ids(300, seed=1)
    cfg = config(max_steps=40)
    straight = Trainer(tiny_model(dropout=0.3, embed_dropout=0.1), ids, valid, cfg, CPU, "fp32")
    torch.manual_seed(5)
    run_to_end(straight)

    first = Trainer(tiny_model(dropout=0.3, embed_dropout=0.1), ids, valid, cfg, CPU, "fp32")
    torch.manual_seed(5)
    for event in first.run():
        if getattr(event, "step", 0) >= 17:
            first.request_stop()
        if isinstance(event, Stopped):
            break
    tensors, info = first.resume_state()
    torch.manual_seed(999)  # the saved RNG state must win over whatever comes before
    second = Trainer(
        tiny_model(dropout=0.3, embed_dropout=0.1),
        ids,
        valid,
        cfg,
        CPU,
        "fp32",
        resume=(tensors, json.loads(json.dumps(info))),
    )
    assert second.step == info["step"] > 0
    run_to_end(second)
    for (name, a), b in zip(
        straight.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_nan_rolls_back_and_lowers_lr():
    trainer = Trainer(
        tiny_model(), random_ids(), random_ids(300, seed=1), config(max_steps=40), CPU, "fp32"
    )
    events, poisoned = [], False
    for event in trainer.run():
        events.append(event)
        if isinstance(event, Evaluation) and not poisoned:
            poisoned = True
            with torch.no_grad():
                trainer.model.embedding.weight[3] = float("nan")
    rollbacks = [e for e in events if isinstance(e, Rollback)]
    assert len(rollbacks) == 1 and rollbacks[0].lr_scale == 0.5
    assert isinstance(events[-1], Finished) and math.isfinite(events[-1].best_loss)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_corpus_shorter_than_one_window():
    with pytest.raises(RnngenError, match="fewer than one window"):
        Trainer(tiny_model(), random_ids(40), random_ids(40), config(), CPU, "fp32")


def test_atomic_save_survives_failure_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(tiny_text(50).split("\n"), TokenizerConfig(kind="char"))
    model = tiny_model(vocab=tokenizer.vocab_size)
    save_model(path, model, tokenizer, {"metrics": {"step": 1}})
    good = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RnngenError, match="No space left"):
        save_model(path, tiny_model(vocab=tokenizer.vocab_size, layers=1), tokenizer, {})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left
    loaded, loaded_tokenizer, meta = load_model(path)
    assert loaded_tokenizer.sha256 == tokenizer.sha256 and json.loads(meta["metrics"])["step"] == 1


def test_atomic_write_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, b"new" * 1000)
    assert path.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


# -- the command ------------------------------------------------------------------------------

SMALL = [
    "--hidden",
    "32",
    "--embed",
    "32",
    "--layers",
    "1",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--quiet",
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_text(600))
    return path


def test_every_option_reaches_the_config(corpus, tmp_path, monkeypatch):
    import rnngen.training.run

    seen = {}

    def capture(data, options, config, *rest):
        seen["train"], seen["model"] = config, options
        raise SystemExit(0)

    monkeypatch.setattr(rnngen.training.run, "plan_model", capture)
    from rnngen.cli import app

    result = CliRunner().invoke(
        app,
        [
            "train",
            str(corpus),
            "-o",
            str(tmp_path / "x.safetensors"),
            "--cell",
            "gru",
            "--layers",
            "3",
            "--hidden",
            "40",
            "--embed",
            "24",
            "--dropout",
            "0.3",
            "--embed-dropout",
            "0.2",
            "--no-tie",
            "--residual",
            "--clip",
            "0.7",
            "--lr",
            "0.01",
            "--warmup",
            "7",
            "--min-lr-ratio",
            "0.2",
            "--weight-decay",
            "0.05",
            "--batch-size",
            "3",
            "--seq-len",
            "9",
            "--epochs",
            "2.5",
            "--max-steps",
            "11",
            "--time-budget",
            "1m30s",
            "--eval-every",
            "4",
            "--eval-tokens",
            "100",
            "--log-every",
            "2",
            "--seed",
            "7",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--dropout-input",
            "0.4",
            "--dropout-hidden",
            "0.25",
            "--dropout-output",
            "0.35",
            "--locked-dropout",
            "--weight-drop",
            "0.5",
            "--softmax",
            "adaptive",
            "--ar",
            "2",
            "--tar",
            "1",
            "--variable-bptt",
            "--average",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["model"] == dict(
        dropout_input=0.4,
        dropout_hidden=0.25,
        dropout_output=0.35,
        locked_dropout=True,
        weight_drop=0.5,
        softmax="adaptive",
        cell="gru",
        layers=3,
        hidden_size=40,
        embed_size=24,
        dropout=0.3,
        embed_dropout=0.2,
        tie=False,
        residual=True,
        skip="residual",
        model="rnn",
        window=0,
    )
    assert seen["train"] == TrainConfig(
        batch_size=3,
        seq_len=9,
        lr=0.01,
        min_lr_ratio=0.2,
        warmup_steps=7,
        weight_decay=0.05,
        clip=0.7,
        epochs=2.5,
        max_steps=11,
        time_budget=90.0,
        eval_every=4,
        eval_tokens=100,
        log_every=2,
        seed=7,
        device="cpu",
        precision="fp32",
        ar=2.0,
        tar=1.0,
        variable_bptt=True,
        average=True,
    )


def test_train_writes_a_self_contained_checkpoint(corpus, tmp_path):
    out = tmp_path / "ck" / "m.safetensors"
    result = run_cli("train", str(corpus), "-o", str(out), "--max-steps", "20", "--json", *SMALL)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 20 and math.isfinite(summary["best_valid_loss"])
    corpus.unlink()  # the checkpoint needs nothing else
    model, tokenizer, meta = load_model(out)
    assert tokenizer.decode(tokenizer.encode("the cat\n")) == "the cat\n"
    assert json.loads(meta["metrics"])["valid_bpc"] > 0
    lines = [json.loads(line) for line in out.with_name("m.metrics.jsonl").read_text().splitlines()]
    assert {line["event"] for line in lines} == {"step", "eval"}


def test_existing_checkpoint_is_never_overwritten_silently(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    assert run_cli("train", str(corpus), "-o", str(out), "--max-steps", "5", *SMALL).returncode == 0
    before = out.read_bytes()
    result = run_cli("train", str(corpus), "-o", str(out), "--max-steps", "5", *SMALL)
    assert result.returncode == 1 and "--force" in result.stderr and out.read_bytes() == before
    result = run_cli("train", str(corpus), "-o", str(out), "--max-steps", "5", "--force", *SMALL)
    assert result.returncode == 0


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--lr", "-1"], "--lr must be"),
        (["--layers", "0"], "--layers must be"),
        (["--dropout", "1.5"], "--dropout must be"),
        (["--cell", "lstmx"], "unknown cell"),
        (["--time-budget", "soon"], "not a duration"),
        (["--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
        (["--device", "cuda"], "no CUDA GPU") if not torch.cuda.is_available() else ([], ""),
        (["--seq-len", "5000"], "fewer than one window"),
        (["--resume"], "nothing to resume"),
    ],
)
def test_bad_options_give_one_line(corpus, tmp_path, extra, fragment):
    if not extra:
        pytest.skip("CUDA present")
    result = run_cli("train", str(corpus), "-o", str(tmp_path / "m.safetensors"), *SMALL, *extra)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().startswith("error: ") and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_bad_corpora(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert "is empty" in run_cli("train", str(tmp_path / "empty.txt")).stderr
    assert "does not exist" in run_cli("train", str(tmp_path / "none.txt")).stderr


def test_unwritable_output(corpus, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        result = run_cli("train", str(corpus), "-o", str(locked / "m.safetensors"), *SMALL)
        assert result.returncode == 1 and "cannot write" in result.stderr
    finally:
        locked.chmod(0o700)
