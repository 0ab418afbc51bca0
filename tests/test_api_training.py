"""Training from Python without the CLI (rnngen.training.run), and the CLI giving the same figures
as the API for the same options and seed: both take one path through the library's phases."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import tiny_text
from rnngen.checkpoint import load_model, metrics_path
from rnngen.errors import RnngenError
from rnngen.training.events import Evaluation, Finished, Saved, Step, TrainResult
from rnngen.training.options import configs, parse_duration

TINY = dict(kind="char", hidden=16, batch_size=4, seq_len=16, max_steps=4, seed=3,
            device="cpu", precision="fp32")  # fmt: skip


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_text(300))
    return path


def test_api_round_trip_without_the_cli(corpus, tmp_path):
    from rnngen.training.run import train

    events = []
    out = tmp_path / "api" / "m.safetensors"
    result = train(corpus, output=out, on_event=events.append, **TINY)
    assert isinstance(result, TrainResult) and not result.interrupted
    assert result.checkpoint == str(out) and result.steps == 4 and result.sizing is None
    assert result.best_valid_bpc > 0 and result.seconds > 0
    kinds = [type(e) for e in events]
    assert Step in kinds and Evaluation in kinds and Saved in kinds
    assert kinds[-2:] == [Finished, TrainResult] and events[-1] is result
    # a Saved event comes only after the file is on disk, right after its best evaluation
    saved = [i for i, e in enumerate(events) if isinstance(e, Saved)]
    assert all(isinstance(events[i - 1], Evaluation) and events[i - 1].is_best for i in saved)
    model, tokenizer, meta = load_model(out)
    assert model.config.hidden_size == 16 and tokenizer.kind == "char"
    assert json.loads(meta["metrics"])["valid_bpc"] == pytest.approx(result.best_valid_bpc)
    # the same output again needs force=True, as -o needs --force; resume=True continues
    with pytest.raises(RnngenError, match="exists"):
        train(corpus, output=out, **TINY)
    more = train(corpus, output=out, resume=True, **{**TINY, "max_steps": 6})
    assert more.steps == 6


def test_api_options_are_the_clis(corpus, tmp_path):
    with pytest.raises(TypeError):
        configs(hiden=16)  # a misspelled option fails at once
    with pytest.raises(RnngenError, match="--size"):
        configs(size="huge")
    assert parse_duration("3m") == parse_duration(180) == 180.0
    config, options = configs(time_budget="1h30m", size="small", embed=8)
    assert config.time_budget == 5400.0 and options["hidden_size"] == 256
    assert options["embed_size"] == 8 and options["layers"] == 1


def test_cli_and_api_give_the_same_figures(corpus, tmp_path):
    from rnngen.cli import app
    from rnngen.training.run import train

    api_out, cli_out = tmp_path / "api.safetensors", tmp_path / "cli.safetensors"
    result = train(corpus, output=api_out, **TINY)
    args = ["train", str(corpus), "-o", str(cli_out), "--json", "--quiet"]
    for name, value in TINY.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["steps"] == result.steps
    assert summary["best_valid_loss"] == result.best_valid_loss
    assert summary["best_valid_bpc"] == result.best_valid_bpc
    assert summary["clipped_share"] == result.clipped_share

    def losses(path):
        lines = [json.loads(line) for line in metrics_path(path).read_text().splitlines()]
        return [(r["event"], r["step"], r.get("loss", r.get("valid_loss"))) for r in lines]

    assert losses(api_out) == losses(cli_out)


def test_a_rollback_is_kept_in_the_metrics_for_plot(corpus, tmp_path, monkeypatch):
    from rnngen.plot.runs import load_run
    from rnngen.training.loop import Trainer
    from rnngen.training.run import train

    original = Trainer._exploded

    def explode_once(self, loss):  # one loss explosion, at step 3
        return self.step == 3 and self.rollbacks == 0 or original(self, loss)

    monkeypatch.setattr(Trainer, "_exploded", explode_once)
    out = tmp_path / "rb" / "m.safetensors"
    train(corpus, output=out, **{**TINY, "max_steps": 8, "eval_every": 2})
    records = [json.loads(line) for line in metrics_path(out).read_text().splitlines()]
    rollbacks = [r for r in records if r["event"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["lr_scale"] == 0.5
    back_to = rollbacks[0]["step"]  # the last evaluation before the explosion
    assert 0 < back_to <= 3
    assert load_run(metrics_path(out)).rollbacks == [back_to]


def test_eval_every_sets_the_interval(corpus, tmp_path):
    """--eval-every N evaluates every N steps and at the end, instead of adding its
    evaluations to the ten spread over the run."""
    from rnngen.training.run import train

    steps = []

    def record(event):
        if isinstance(event, Evaluation):
            steps.append(event.step)

    options = {**TINY, "max_steps": 7, "eval_every": 3}
    train(corpus, output=tmp_path / "m.safetensors", on_event=record, **options)
    assert steps == [3, 6, 7]
    steps.clear()
    train(corpus, output=tmp_path / "n.safetensors", on_event=record, **{**TINY, "max_steps": 20})
    assert steps == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]  # without it: ten over the run


def _steady(record: dict) -> dict:
    """A metrics record without the figures that measure time."""
    timed = {"tokens_per_second", "elapsed", "seconds", "threads"}
    return {k: v for k, v in record.items() if k not in timed}


def test_cli_and_api_write_the_same_checkpoint(corpus, tmp_path):
    """One train() behind both doors: the same options and seed give the same tensors and
    the same metrics records (CPU threads fixed at 1 on both sides, so that neither adapts
    them to the load in its own way)."""
    import torch
    from safetensors.torch import load_file

    from rnngen import api
    from rnngen.cli import app

    options = dict(kind="char", hidden=16, batch_size=4, seq_len=16, max_steps=4, seed=5)
    api_out, cli_out = tmp_path / "api.safetensors", tmp_path / "cli.safetensors"
    api.train(corpus, output=api_out, threads=1, **options)
    args = ["train", str(corpus), "-o", str(cli_out), "--quiet", "--threads", "1"]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    ours, theirs = load_file(api_out), load_file(cli_out)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    records = [
        [_steady(json.loads(line)) for line in metrics_path(out).read_text().splitlines()]
        for out in (api_out, cli_out)
    ]
    assert records[0] == records[1] and len(records[0]) > 2


def test_train_reports_its_phases_and_stops_on_request(corpus, tmp_path):
    """on_event sees the phases before the loop (placed, tokenized, built), and `stop`
    ends the run at a step boundary with its state saved, for resume=True to continue."""
    import threading

    from rnngen import api

    events, stop = [], threading.Event()

    def on_event(event):
        events.append(event)
        if isinstance(event, api.Step) and event.step == 2:
            stop.set()

    out = tmp_path / "m.safetensors"
    options = {**TINY, "log_every": 1, "max_steps": 8}
    result = api.train(corpus, output=out, on_event=on_event, stop=stop, **options)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Placed" and kinds.index("ModelBuilt") < kinds.index("Step")
    tokenizing = [e for e in events if isinstance(e, api.TokenizeProgress)]
    assert tokenizing[0].total is None and tokenizing[-1].finished
    built = next(e for e in events if isinstance(e, api.ModelBuilt))
    assert (built.layers, built.hidden_size, built.tokenizer_kind) == (1, 16, "char")
    assert built.resumed_step is None and built.device == "cpu"
    assert result.interrupted and result.steps == 2 and kinds[-2:] == ["Stopped", "TrainResult"]
    more = api.train(corpus, output=out, resume=True, on_event=events.append, **options)
    assert more.steps == 8 and not more.interrupted
    assert [e for e in events if isinstance(e, api.ModelBuilt)][-1].resumed_step == 2
