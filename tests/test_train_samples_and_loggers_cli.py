"""`train --sample-every` and `--log`: samples that leave the run bit for bit as it was,
shown under the evaluation line and kept in metrics.jsonl; loggers fed by a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from conftest import tiny_text
from rnngen.checkpoint import state_path
from rnngen.errors import RnngenError

# Dropout, so that a stray draw from the global generator would change the weights.
OPTIONS = dict(hidden=24, max_steps=20, batch_size=4, seq_len=16, kind="char", dropout=0.3,
               embed_dropout=0.1, device="cpu", precision="fp32")  # fmt: skip


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "c.txt"
    path.write_text(tiny_text(300))
    return path


def tensors(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118


def records(checkpoint: Path, event: str) -> list[dict]:
    lines = checkpoint.with_name(checkpoint.stem + ".metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_sampling_leaves_the_run_bit_identical(corpus, tmp_path):
    import rnngen

    plain = rnngen.train(corpus, output=tmp_path / "plain.safetensors", **OPTIONS)
    sampled = rnngen.train(corpus, output=tmp_path / "sampled.safetensors", sample_every=1,
                           **OPTIONS)  # fmt: skip
    for a, b in ((plain.checkpoint, sampled.checkpoint),
                 (state_path(plain.checkpoint), state_path(sampled.checkpoint))):  # fmt: skip
        ta, tb = tensors(Path(a)), tensors(Path(b))
        assert ta.keys() == tb.keys() and "embedding.weight" in ta or "rng.cpu" in ta
        for key in ta:  # weights, optimizer moments, the RNG state, the carried state
            assert ta[key].equal(tb[key]), key
    samples = records(Path(sampled.checkpoint), "samples")
    evaluations = [r["step"] for r in records(Path(sampled.checkpoint), "eval")]
    assert [r["step"] for r in samples] == evaluations and len(evaluations) >= 5
    assert not records(Path(plain.checkpoint), "samples")
    assert all(len(s["text"]) <= 200 and s["text"] for r in samples for s in r["samples"])
    assert [s["temperature"] for s in samples[0]["samples"]] == [0.5, 1.0]
    # Seeded: the same run samples the same text.
    again = rnngen.train(corpus, output=tmp_path / "again.safetensors", sample_every=2,
                         **OPTIONS)  # fmt: skip
    assert len(records(Path(again.checkpoint), "samples")) == len(evaluations) // 2
    by_step = {r["step"]: r["samples"] for r in samples}
    for record in records(Path(again.checkpoint), "samples"):
        assert record["samples"] == by_step[record["step"]]


def train_command(*args):
    import torch
    from typer.testing import CliRunner

    from rnngen.cli import app

    threads = torch.get_num_threads()  # the command sets it; other tests keep theirs
    try:
        result = CliRunner().invoke(app, ["train", *args])
    finally:
        torch.set_num_threads(threads)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_samples_are_shown_under_the_evaluation_line(corpus, tmp_path):
    result = train_command(str(corpus), "-o", str(tmp_path / "m.safetensors"),
                           "--sample-every", "2", "--hidden", "24", "--max-steps", "12",
                           "--batch-size", "4", "--seq-len", "16", "--kind", "char")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert result.stdout == ""
    evaluations = [i for i, line in enumerate(lines) if ": valid loss" in line]
    assert len(evaluations) >= 4
    for n, i in enumerate(evaluations, 1):  # every 2nd evaluation line has its samples below
        assert ("sample (temperature 0.5" in lines[i + 1]) == (n % 2 == 0), lines[i : i + 2]


@pytest.mark.parametrize("option, fragment", [
    (["--sample-every", "-1"], "--sample-every must be 0"),
    (["--log", "mlflow"], "unknown logger"),
])  # fmt: skip
def test_bad_options_are_one_line(corpus, tmp_path, option, fragment):
    result = train_command(str(corpus), "-o", str(tmp_path / "m.safetensors"), *option)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and fragment in result.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_an_unwritable_log_dir_is_an_error_before_training(corpus, tmp_path):
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = train_command(str(corpus), "-o", str(tmp_path / "m.safetensors"),
                           "--log", f"tensorboard:{blocker}/tb", "--max-steps", "4")  # fmt: skip
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot create TensorBoard log directory" in result.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_a_run_logged_to_tensorboard(corpus, tmp_path):
    pytest.importorskip("tensorboard")
    from test_loggers import accumulator

    import rnngen

    run = rnngen.train(corpus, output=tmp_path / "m.safetensors", sample_every=2,
                       log=[f"tensorboard:{tmp_path / 'tb'}"], **OPTIONS)  # fmt: skip
    acc = accumulator(tmp_path / "tb")
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [r["step"] for r in records(Path(run.checkpoint), "step")]
    assert [e.value for e in acc.Scalars("valid/bits_per_char")] == pytest.approx(
        [r["valid_bpc"] for r in records(Path(run.checkpoint), "eval")]
    )
    assert "samples/temperature_1/text_summary" in acc.Tags()["tensors"]
    [metadata] = (tmp_path / "tb").rglob("metadata.tsv")
    vocab = tensors(Path(run.checkpoint))["embedding.weight"].shape[0]
    assert len(metadata.read_text().splitlines()) == vocab


def test_a_run_logged_to_wandb_offline(corpus, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    import rnngen

    try:
        rnngen.train(corpus, output=tmp_path / "m.safetensors", log=["wandb"], **OPTIONS)
    finally:
        wandb.teardown()
    [log] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    from test_loggers import wandb_records

    history = [r["history"] for r in wandb_records(log) if "history" in r]
    logged = [h["trainer/step"] for h in history if "valid/bits_per_char" in h]
    assert logged == [r["step"] for r in records(tmp_path / "m.safetensors", "eval")]


def test_the_api_checks_its_options(corpus):
    import rnngen

    with pytest.raises(RnngenError, match="^sample_every must be 0"):
        rnngen.train(corpus, sample_every=-2, max_steps=1)
    with pytest.raises(RnngenError, match="unknown logger"):
        rnngen.train(corpus, log=["csv"], max_steps=1)
