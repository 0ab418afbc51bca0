"""TensorBoard and W&B loggers: real event files read back with TensorBoard's own reader,
real offline W&B runs, and every failure a one-line error before training or a warning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rnngen.errors import RnngenError
from rnngen.training.loggers import RunLoggers, parse_specs

RECORDS = [
    {"event": "step", "step": 10, "loss": 3.5, "grad_norm": 2.5, "lr": 1e-3,
     "tokens_per_second": 1000.0, "clipped_share": 0.5},
    {"event": "step", "step": 20, "loss": 3.0, "grad_norm": 0.5, "lr": 2e-3,
     "tokens_per_second": 1100.0, "clipped_share": 0.25},
    {"event": "eval", "step": 20, "valid_loss": 2.9, "valid_bpc": 1.9, "valid_ppl": 18.2},
    {"event": "rollback", "step": 20, "reason": "loss nan", "lr_scale": 0.5},
    {"event": "samples", "step": 20, "seconds": 0.1, "samples": [
        {"temperature": 0.5, "seed": 7, "text": "the cat\nsat"},
        {"temperature": 1.0, "seed": 8, "text": "a dog ran"}]},
]  # fmt: skip
CONFIG = {"model": {"cell": "lstm", "hidden_size": 32, "cutoffs": [], "residual": False},
          "train": {"lr": None, "seed": 1}}  # fmt: skip


def accumulator(directory: Path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    acc = event_accumulator.EventAccumulator(
        str(directory), size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return acc


def test_tensorboard_event_files_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    loggers = RunLoggers.open([f"tensorboard:{tmp_path / 'tb'}"], "run")
    loggers.hyperparameters(CONFIG)
    for record in RECORDS:
        loggers.record(record)
    labels = ["▁the", "\\n", "cat"]
    loggers.embedding(np.eye(3, 4, dtype=np.float32), labels, 20)
    loggers.close()
    assert loggers.take_warnings() == []
    acc = accumulator(tmp_path / "tb")
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm_before_clip", "train/clipped_share",
            "train/learning_rate", "train/tokens_per_second", "valid/bits_per_char",
            "valid/perplexity", "valid/loss", "train/rollback_lr_scale"} <= scalars  # fmt: skip
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(10, 3.5), (20, 3.0)]
    assert acc.Scalars("valid/bits_per_char")[0].value == pytest.approx(1.9)
    tensors = set(acc.Tags()["tensors"])  # text summaries are tensors
    assert {"samples/temperature_0.5/text_summary", "rollbacks/text_summary",
            "config/text_summary"} <= tensors  # fmt: skip
    text = acc.Tensors("samples/temperature_0.5/text_summary")[0]
    assert "the cat" in text.tensor_proto.string_val[0].decode()
    # The hparams plugin's data, and the projector's files: the vectors and the labels.
    experiment = acc.PluginTagToContent("hparams")["_hparams_/experiment"]
    assert b"model/cell" in experiment and b"valid/bits_per_char" in experiment
    projector = (tmp_path / "tb" / "projector_config.pbtxt").read_text()
    assert "input_embedding" in projector
    [metadata] = (tmp_path / "tb").rglob("metadata.tsv")
    assert metadata.read_text().splitlines() == labels


@pytest.fixture
def fresh_wandb():
    """wandb keeps its settings in a process-wide singleton: each test starts its own."""
    wandb = pytest.importorskip("wandb")
    wandb.teardown()
    yield
    wandb.teardown()


def test_wandb_offline_run(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = RunLoggers.open(["wandb:rnngen-tests"], "run")
    loggers.hyperparameters(CONFIG)
    for record in RECORDS:
        loggers.record(record)
    loggers.close()
    assert loggers.take_warnings() == []
    import wandb

    wandb.teardown()  # waits for wandb's service to write everything, as a process's exit does
    [run] = (tmp_path / "wandb").glob("offline-run-*")
    [log] = run.glob("run-*.wandb")  # what `wandb sync` uploads
    records = wandb_records(log)
    history = [r["history"] for r in records if "history" in r]
    assert [(h["trainer/step"], h["train/loss"]) for h in history if "train/loss" in h] == [
        (10, 3.5),
        (20, 3.0),
    ]
    evaluation = next(h for h in history if "valid/bits_per_char" in h)
    assert evaluation["valid/perplexity"] == 18.2 and evaluation["trainer/step"] == 20
    assert any(h.get("train/rollbacks") == 1 for h in history)
    config = {k: v for r in records if "config" in r for k, v in r["config"].items()}
    assert config["model/cell"] == "lstm" and config["train/seed"] == 1
    [table] = (run / "files" / "media" / "table").glob("samples_*.table.json")
    assert json.loads(table.read_text())["data"][0] == [20, 0.5, 7, "the cat\nsat"]


def wandb_records(path: Path) -> list[dict]:
    """The records of a .wandb file (LevelDB's log format: 32 KiB blocks of chunks with a
    7-byte header, after a 7-byte file header; each record a wandb protobuf), as
    {"history": {key: value}} and {"config": {key: value}}."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block, position, chunks, pending = path.read_bytes(), 32768, 7, [], b""
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (length == 0 and kind == 0):  # the rest of a block is padding
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            chunks.append(pending)
    out = []
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = record.history.item
            out.append({"history": {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                    for i in items}})  # fmt: skip
        elif kind == "config":
            out.append({"config": {u.key: json.loads(u.value_json) for u in record.config.update}})
    return out


@pytest.mark.parametrize("specs, fragment", [
    (["mlflow"], "unknown logger"),
    (["tensorboard", "tensorboard:x"], "given twice"),
    (["tensorboard:"], "nothing after the colon"),
])  # fmt: skip
def test_bad_specs(specs, fragment):
    with pytest.raises(RnngenError, match=fragment):
        parse_specs(specs)


def test_a_missing_package_is_one_line_naming_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(RnngenError, match="needs the tensorboard package.*rnngen\\[logging\\]"):
        RunLoggers.open([f"tensorboard:{tmp_path}"], "run")
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(RnngenError, match="needs the wandb package"):
        RunLoggers.open(["wandb"], "run")


def test_an_unwritable_directory_fails_before_training(tmp_path):
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RnngenError, match="cannot create TensorBoard log directory"):
        RunLoggers.open([f"tensorboard:{blocker / 'tb'}"], "run")


def test_wandb_without_a_login_or_offline_mode_fails_before_training(
    tmp_path, monkeypatch, fresh_wandb
):
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    with pytest.raises(
        RnngenError, match="--log wandb: cannot start a W&B run.*WANDB_MODE=offline"
    ):
        RunLoggers.open(["wandb"], "run")


def test_a_logger_failing_mid_run_is_dropped_with_a_warning(tmp_path):
    class Broken:
        kind = "tensorboard"
        closed = False

        def record(self, record):
            raise OSError(28, "No space left on device")

        def close(self, exit_code=0):
            Broken.closed = True

    loggers = RunLoggers([Broken()])
    loggers.record(RECORDS[0])
    loggers.record(RECORDS[1])  # dropped: nothing more is tried
    assert loggers.take_warnings() == [
        "--log tensorboard stopped: [Errno 28] No space left on device"
    ]
    assert Broken.closed and not loggers and loggers.take_warnings() == []
