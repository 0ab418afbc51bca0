"""Damaged and crafted checkpoints and resume files: one RnngenError, never a traceback.

The files are crafted here from a real (tiny) checkpoint and resume file, by rewriting the
safetensors header (8-byte length, JSON, then the tensor bytes), rather than checked in.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import OLD, run_cli, tiny_text
from rnngen.checkpoint import latest_checkpoint, load_model, read_meta, save_model, state_path
from rnngen.config import ModelConfig, TokenizerConfig, TrainConfig, from_json, to_json
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.training.loop import Trainer
from rnngen.training.resume_file import load_state, save_state

CPU = torch.device("cpu")
TRAIN = TrainConfig(batch_size=4, seq_len=8, max_steps=6, warmup_steps=2, log_every=2)


# -- a real checkpoint and resume file, made once -----------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """(model path, train ids, valid ids): a tiny trained checkpoint with its resume file,
    stopped mid-run so that the resume file carries a hidden state."""
    from rnngen.corpus.tokenizer import train_tokenizer

    directory = tmp_path_factory.mktemp("real")
    text = tiny_text(80)
    tokenizer = train_tokenizer(text.split("\n"), TokenizerConfig(kind="char"))
    ids = np.asarray(tokenizer.encode(text), dtype=np.uint16)
    train_ids, valid_ids = ids[:-200], ids[-200:]
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(tokenizer.vocab_size, layers=2, hidden_size=16, embed_size=16))
    trainer = Trainer(model, train_ids, valid_ids, TRAIN, CPU, "fp32")
    for event in trainer.run():
        if getattr(event, "step", 0) >= 3:
            trainer.request_stop()
    path = directory / "m.safetensors"
    save_model(path, model, tokenizer, {"metrics": {"step": 3}, "provenance": {"corpus": "x"}})
    tensors, info = trainer.resume_state()
    info.update(
        model_config=to_json(model.config),
        train_config=to_json(TRAIN),
        tokenizer_sha256=tokenizer.sha256,
    )
    save_state(path, tensors, info)
    return path, train_ids, valid_ids


def split(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def rewrite(source: Path, target: Path, change) -> Path:
    """Copy a safetensors file, letting `change(header)` edit its header in place."""
    header, body = split(source.read_bytes())
    change(header)
    target.write_bytes(join(header, body))
    return target


def set_meta(key, value):
    def change(header):
        if value is None:
            header["__metadata__"].pop(key, None)
        else:
            header["__metadata__"][key] = value

    return change


def set_config(field, value, key="model_config"):
    def change(header):
        config = json.loads(header["__metadata__"][key])
        if value is None:
            config.pop(field, None)
        else:
            config[field] = value
        header["__metadata__"][key] = json.dumps(config)

    return change


def load_clean(path: Path):
    """load_model, which may only succeed or raise RnngenError."""
    try:
        return load_model(path)
    except RnngenError as e:
        assert "\n" not in str(e)
        return e


# -- the model checkpoint -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,fragment",
    [
        (set_meta("model_config", None), "no model_config"),
        (set_meta("model_config", "[1, 2]"), "not a JSON object"),
        (set_meta("model_config", "{"), "not a JSON object"),
        (set_config("vocab_size", None), "lacks the field 'vocab_size'"),
        (set_config("hidden_size", "16"), "wrong type"),
        (set_config("layers", 2.5), "wrong type"),
        (set_config("tie", 1), "wrong type"),
        (set_config("dropout", float("nan")), "--dropout"),
        (set_config("hidden_size", 1 << 15), "the model"),  # shapes, nothing allocated
        (set_config("vocab_size", 10_000_000), "the model needs"),
        (set_config("cell", "gru"), "the model"),
        (set_meta("tokenizer_kind", None), "no tokenizer_kind"),
        (set_meta("tokenizer_kind", "klingon"), "unknown tokenizer_kind"),
        (set_meta("tokenizer_sha256", None), "no tokenizer_sha256"),
        (set_meta("tokenizer", ""), "empty"),
        (set_meta("tokenizer", "not base64!"), "not base64"),
        (set_meta("metrics", "[]"), "metrics is not a JSON object"),
        (set_meta("provenance", '"x"'), "provenance is not a JSON object"),
        (set_meta("versions", "3"), "versions is not a JSON object"),
        (set_meta("train_config", "{"), "train_config is not a JSON object"),
    ],
)
def test_damaged_header_is_one_line(real, tmp_path, change, fragment):
    bad = rewrite(real[0], tmp_path / "bad.safetensors", change)
    with pytest.raises(RnngenError, match="damaged rnngen checkpoint") as error:
        load_model(bad)
    assert fragment in str(error.value)
    with pytest.raises(RnngenError):  # the same check guards `info` (read_meta)
        read_meta(bad)


def test_tokenizer_of_another_vocabulary_is_refused(real, tmp_path):
    from rnngen.corpus.tokenizer import train_tokenizer

    other = train_tokenizer(["xyz " * 50], TokenizerConfig(kind="char"))
    encoded = base64.b64encode(other.proto).decode()

    def change(header):
        header["__metadata__"].update(tokenizer=encoded, tokenizer_sha256=other.sha256)

    bad = rewrite(real[0], tmp_path / "bad.safetensors", change)
    with pytest.raises(RnngenError, match="pieces, the model"):
        load_model(bad)


def test_garbage_tokenizer_proto_is_refused(real, tmp_path):
    import hashlib

    proto = b"\x08\x01garbage"

    def change(header):
        header["__metadata__"].update(
            tokenizer=base64.b64encode(proto).decode(),
            tokenizer_sha256=hashlib.sha256(proto).hexdigest(),
        )

    with pytest.raises(RnngenError, match="damaged"):
        load_model(rewrite(real[0], tmp_path / "bad.safetensors", change))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(real, tmp_path, value):
    model, tokenizer, meta = load_model(real[0])
    with torch.no_grad():
        model.embedding.weight[1, 2] = value
    save_model(tmp_path / "nan.safetensors", model, tokenizer, {})
    with pytest.raises(RnngenError, match="NaN or infinite"):
        load_model(tmp_path / "nan.safetensors")


def test_wrong_dtype_and_shape_are_refused(real, tmp_path):
    def to_f16(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["dtype"] = "F16"

    with pytest.raises(RnngenError, match="damaged|not a readable"):
        load_model(rewrite(real[0], tmp_path / "a.safetensors", to_f16))


def test_cli_refuses_a_nan_checkpoint_in_one_line(real, tmp_path):
    model, tokenizer, _ = load_model(real[0])
    with torch.no_grad():
        model.output_bias[0] = float("nan")
    save_model(tmp_path / "nan.safetensors", model, tokenizer, {})
    result = run_cli("sample", str(tmp_path / "nan.safetensors"), "-n", "5")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_latest_checkpoint_skips_dangling_symlinks(real, tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    os.symlink(tmp_path / "gone.safetensors", directory / "dangling.safetensors")
    with pytest.raises(RnngenError, match="none found"):
        latest_checkpoint(directory)
    (directory / "real.safetensors").write_bytes(real[0].read_bytes())
    assert latest_checkpoint(directory).name == "real.safetensors"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
META_KEYS = ["format", "model_config", "tokenizer", "tokenizer_sha256", "tokenizer_kind",
             "metrics", "provenance", "versions", "train_config", "precision"]  # fmt: skip
CONFIG_FIELDS = ["vocab_size", "cell", "layers", "hidden_size", "embed_size", "dropout",
                 "embed_dropout", "tie", "residual", "softmax", "cutoffs", "weight_drop",
                 "dropout_input", "locked_dropout", "unknown"]  # fmt: skip


@st.composite
def header_mutations(draw):
    kind = draw(st.sampled_from(["drop", "text", "json", "config", "tensor"]))
    if kind == "config":
        field = draw(st.sampled_from(CONFIG_FIELDS))
        value = draw(st.none() | JSON_VALUES)
        return kind, field, value
    if kind == "tensor":
        attribute = draw(st.sampled_from(["shape", "dtype", "drop"]))
        value = draw(
            st.lists(st.integers(0, 40), max_size=3) | st.sampled_from(["F16", "I64", "U8"])
        )
        return kind, attribute, value
    key = draw(st.sampled_from(META_KEYS))
    value = draw(st.text(max_size=20)) if kind == "text" else json.dumps(draw(JSON_VALUES))
    return kind, key, value


def apply(header: dict, mutation) -> None:
    kind, key, value = mutation
    meta = header["__metadata__"]
    if kind == "drop":
        meta.pop(key, None)
    elif kind in ("text", "json"):
        meta[key] = value
    elif kind == "config":
        # an earlier mutation may have dropped or garbled the config: nothing to edit
        with contextlib.suppress(KeyError, ValueError, AttributeError, TypeError):
            set_config(key, value)(header)
    else:
        name = sorted(k for k in header if k != "__metadata__")[0]
        if key == "drop":
            del header[name]
        elif key == "dtype" and isinstance(value, str):
            header[name]["dtype"] = value
        elif isinstance(value, list):
            header[name]["shape"] = value


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=st.lists(header_mutations(), min_size=1, max_size=3))
def test_fuzzed_checkpoint_header_loads_or_is_one_line(real, tmp_path, mutations):
    path = tmp_path / "fuzz.safetensors"
    rewrite(real[0], path, lambda header: [apply(header, m) for m in mutations])
    result = load_clean(path)
    if not isinstance(result, RnngenError):
        model, tokenizer, _ = result
        assert tokenizer.vocab_size == model.config.vocab_size
        assert all(torch.isfinite(t).all() for t in model.state_dict().values())


# -- the resume file ------------------------------------------------------------------------------


def resume(real, path: Path):
    """What `train --resume` does with a resume file: load it, then build a Trainer on it."""
    model_path, train_ids, valid_ids = real
    tensors, info = load_state(path)
    torch.manual_seed(0)
    model = RNNLM(from_json(ModelConfig, info["model_config"]))
    return Trainer(model, train_ids, valid_ids, TRAIN, CPU, "fp32", resume=(tensors, info))


def craft_state(real, tmp_path, change_info=None, change_tensors=None) -> Path:
    tensors, info = load_state(real[0])
    if change_info:
        change_info(info)
    if change_tensors:
        change_tensors(tensors)
    target = tmp_path / "c.safetensors"
    from safetensors.torch import save as save_bytes

    meta = {"format": "rnngen-state/1", "info": json.dumps(info)}
    state_path(target).write_bytes(save_bytes(tensors, metadata=meta))
    return target


def test_the_real_resume_file_resumes(real):
    trainer = resume(real, real[0])
    assert trainer.step == 3 and trainer.hidden is not None


def _pop(key):
    return lambda d: d.pop(key)


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _reshape(key, shape):
    return lambda d: d.__setitem__(key, torch.zeros(shape))


def _first(prefix):
    return lambda d: d.pop(next(k for k in sorted(d) if k.startswith(prefix)))


@pytest.mark.parametrize(
    "change_info,change_tensors",
    [
        (_pop("step"), None),
        (_set("step", -1), None),
        (_set("step", 2.5), None),
        (_set("step", "3"), None),
        (_set("position", 10**9), None),
        (_set("elapsed", float("nan")), None),
        (_set("lr_scale", 0), None),
        (_set("best_loss", "low"), None),
        (_set("model_config", "{}"), None),
        (_set("batch_size", True), None),
        (_set("scaler", {"scale": "x"}), None),
        (None, _first("model.")),
        (None, _reshape("model.embedding.weight", (3, 3))),
        (
            None,
            lambda d: d.__setitem__("model.embedding.weight", d["model.embedding.weight"].double()),
        ),
        (None, _set("optim.x.exp_avg", torch.zeros(1))),
        (None, _set("optim.999.exp_avg", torch.zeros(1))),
        (None, _first("optim.0.exp_avg_sq")),
        (None, _reshape("optim.0.exp_avg", (2,))),
        (None, _pop("rng.cpu")),
        (None, _set("rng.cpu", torch.zeros(7, dtype=torch.uint8))),
        (None, lambda d: d.__setitem__("rng.cpu", d["rng.cpu"].float())),
        (None, _reshape("state.0.0", (1, 3, 16))),
        (None, _pop("state.1.1")),
        (None, _set("state.5.0", torch.zeros(1, 4, 16))),
    ],
)
def test_damaged_resume_file_is_one_line(real, tmp_path, change_info, change_tensors):
    path = craft_state(real, tmp_path, change_info, change_tensors)
    with pytest.raises(RnngenError) as error:
        resume(real, path)
    assert "\n" not in str(error.value) and "resume" in str(error.value)


@st.composite
def state_mutations(draw):
    kind = draw(st.sampled_from(["info_drop", "info_set", "tensor_drop", "tensor_shape",
                                 "tensor_dtype", "tensor_add"]))  # fmt: skip
    key = draw(st.integers(0, 1000))
    value = draw(JSON_VALUES)
    shape = draw(st.lists(st.integers(0, 5), max_size=3))
    dtype = draw(st.sampled_from([torch.float64, torch.float16, torch.int64, torch.uint8]))
    return kind, key, value, shape, dtype


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=st.lists(state_mutations(), min_size=1, max_size=3))
def test_fuzzed_resume_file_resumes_or_is_one_line(real, tmp_path, mutations):
    def change_info(info):
        for kind, key, value, *_ in mutations:
            names = sorted(info)
            if kind == "info_drop":
                info.pop(names[key % len(names)], None)
            elif kind == "info_set":
                info[names[key % len(names)]] = value

    def change_tensors(tensors):
        for kind, key, _, shape, dtype in mutations:
            names = sorted(tensors)
            name = names[key % len(names)]
            if kind == "tensor_drop":
                tensors.pop(name)
            elif kind == "tensor_shape":
                tensors[name] = torch.zeros(shape)
            elif kind == "tensor_dtype":
                tensors[name] = tensors[name].to(dtype)
            elif kind == "tensor_add":
                tensors[f"optim.{key}.exp_avg" if key % 2 else f"state.{key}.0"] = torch.zeros(1)

    try:
        path = craft_state(real, tmp_path, change_info, change_tensors)
    except (TypeError, ValueError):
        return  # not even JSON-able (NaN keys and such): no file to test
    try:
        trainer = resume(real, path)
    except RnngenError as e:
        assert "\n" not in str(e)
        return
    assert trainer.step >= 0 and math.isfinite(trainer.elapsed)


# -- issue 25: nesting, FIFOs, what `info` shows ----------------------------------------------


def nested(depth: int, key: str = "init_from") -> str:
    """A JSON object nested `depth` deep, as a crafted header field."""
    return f'{{"{key}": ' * depth + "{}" + "}" * depth


def cli(*args, input: str | None = None):
    """The CLI in process: exit code, stdout and stderr apart."""
    from typer.testing import CliRunner

    from rnngen.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_one_error_line(result, fragment: str, code: int = 1) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code and result.stdout == "", result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


@pytest.mark.parametrize(
    ("depth", "fragment"), [(3000, "nested too deeply"), (150, "nested more than 100 levels deep")]
)
def test_json_nested_deeply_in_a_checkpoint_is_one_line(real, tmp_path, depth, fragment):
    """The decoder's RecursionError (or a value that would meet one later), in every command
    that reads the header and in rnngen.load."""
    import rnngen

    bad = rewrite(real[0], tmp_path / "deep.safetensors", set_meta("init_from", nested(depth)))
    with pytest.raises(RnngenError, match=f"damaged rnngen checkpoint \\(init_from is {fragment}"):
        rnngen.load(bad, device="cpu")
    for args in (["info", bad], ["sample", bad, "--length", "2"], ["score", bad]):
        assert_one_error_line(cli(*args, input="a line\n"), fragment)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(50))
    result = cli("train", corpus, "--init-from", bad, "-o", tmp_path / "ft.safetensors")
    assert_one_error_line(result, fragment)
    # a field no command needs: info shows it as the text it is
    odd = rewrite(OLD, tmp_path / "odd.safetensors", set_meta("sizing", nested(3000)))
    assert cli("info", odd).exit_code == 0 and cli("info", odd, "--json").exit_code == 0


def test_parse_json_and_json_depth():
    from rnngen.errors import MAX_JSON_DEPTH, json_depth, parse_json

    assert parse_json('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}
    assert json_depth(json.loads(nested(MAX_JSON_DEPTH - 1))) == MAX_JSON_DEPTH
    deep: list = []
    for _ in range(100_000):  # deeper than any recursion limit: walked without recursing
        deep = [deep]
    assert json_depth(deep) == 100_001 and json_depth(3) == 0
    for text, fragment in [("{", "x is not JSON"), (b"\xff", "x is not JSON"),
                           ("[" * 5000, "x is not JSON|nested too deeply"),
                           ("[" * 5000 + "]" * 5000, "x is nested too deeply"),
                           (nested(MAX_JSON_DEPTH), "more than 100 levels")]:  # fmt: skip
        with pytest.raises(RnngenError, match=fragment):
            parse_json(text, "x")
    with pytest.raises(RnngenError, match="x is not a JSON object"):
        parse_json("[]", "x", object_only=True)


def test_a_fine_tuned_lineage_too_deep_to_read_back_is_cut(tmp_path):
    """The base's own record is nested in the new checkpoint's: one deep enough to make that
    unreadable is left out, so a checkpoint rnngen writes always loads."""
    from rnngen.errors import MAX_JSON_DEPTH, json_depth
    from rnngen.training.finetune import Base

    for depth, kept in ((3, True), (MAX_JSON_DEPTH - 5, False)):
        base = Base(tmp_path / "b.safetensors", "0" * 64, None, None,
                    {"init_from": nested(depth, "x")})  # fmt: skip
        record = base.record
        assert ("init_from" in record) is kept
        assert json_depth(record) <= MAX_JSON_DEPTH // 2 + 1


def test_info_shows_a_header_whatever_its_values(tmp_path):
    """Metrics, sizing and split counts that are not numbers are shown as they are, never a
    ValueError from a format string (on the committed old checkpoint, which records its
    training data)."""

    def change(header):
        meta = header["__metadata__"]
        meta["metrics"] = json.dumps({"valid_loss": "x", "valid_bpc": [1], "step": 3})
        meta["sizing"] = json.dumps({"measured": {"1x128": "fast"}, "layers": 1})
        provenance = json.loads(meta["provenance"])
        provenance["tokenized_meta"]["splits"]["train"]["tokens"] = "many"
        meta["provenance"] = json.dumps(provenance)

    odd = rewrite(OLD, tmp_path / "odd.safetensors", change)
    result = cli("info", odd)
    assert result.exit_code == 0, result.stderr
    assert "loss 'x' nats/token" in result.stdout and "[1] bits/char" in result.stdout
    assert "1x128 'fast'k" in result.stdout and "'many' tokens" in result.stdout
    sizing = rewrite(OLD, tmp_path / "s.safetensors", set_meta("sizing", '{"measured": [1]}'))
    assert cli("info", sizing).exit_code == 0
