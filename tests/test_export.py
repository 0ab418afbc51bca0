"""ONNX export: onnxruntime against torch for every cell and output layer, the runtime's
files, the torch-free sampling script against `rnngen sample`, and the errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_text
from rnngen.checkpoint import save_model
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from rnngen.onnx_export import export_checkpoint, export_model  # noqa: E402
from rnngen.onnx_export.models import check_format, export_models, require_packages  # noqa: E402
from rnngen.onnx_export.verify import verify  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "onnx_sample.py"
UNSEEN = "日本語 ▁ é👩‍👧"  # byte fallback, a literal space mark


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(tiny_text(200).split("\n"), TokenizerConfig(kind="bpe"))


def tiny_model(vocab: int, seed: int = 0, **kw) -> RNNLM:
    torch.manual_seed(seed)
    options = dict(hidden_size=32, embed_size=32, layers=2, dropout=0.0)
    options.update(kw)
    if options.get("softmax") == "adaptive":
        options["cutoffs"] = (32, 128)
    model = RNNLM(ModelConfig(vocab_size=vocab, **options)).eval()
    if model.adaptive is not None:  # a frequency order that is not the identity
        model.adaptive.set_order(np.random.default_rng(seed).permutation(vocab))
    with torch.no_grad():  # larger weights than the initialization: sharper distributions
        # (not much larger: a chaotic network amplifies fp32 rounding, torch's own too)
        for param in model.parameters():
            if param.is_floating_point():
                param.mul_(2)
    return model


def heldout(tokenizer, tokens: int = 200) -> np.ndarray:
    ids = [tokenizer.newline_id] + tokenizer.encode(tiny_text(40, seed=9))
    return np.asarray(ids[:tokens], dtype=np.int64)


# Every cell and both output layers by default; the whole grid with -m slow.
SHAPES = {
    "lstm-full-residual": dict(cell="lstm", residual=True, layers=3),
    "gru-adaptive-untied": dict(cell="gru", softmax="adaptive", tie=False),
    "rnn-adaptive-projection": dict(cell="rnn", softmax="adaptive", embed_size=24),
    "rnn-full-untied": dict(cell="rnn", tie=False, layers=1),
}
GRID = [
    pytest.param(dict(cell=c, softmax=s, tie=t, residual=r, layers=2 + r),
                 id=f"{c}-{s}-{'tied' if t else 'untied'}{'-residual' if r else ''}",
                 marks=pytest.mark.slow)
    for c in ("lstm", "gru", "rnn") for s in ("full", "adaptive") for t in (True, False)
    for r in (False, True)
]  # fmt: skip


@pytest.mark.parametrize("shape", [*SHAPES.values(), *GRID], ids=[*SHAPES, *[""] * len(GRID)])
def test_onnxruntime_equals_torch(tokenizer, tmp_path, shape):
    model = tiny_model(tokenizer.vocab_size, **shape)
    result = export_model(model, tokenizer, tmp_path / "out", heldout(tokenizer), "tiny text")
    v = result.verification
    assert v.tokens >= 190 and v.rows == 2
    assert v.step_max_abs_diff < 1e-4 and v.window_max_abs_diff < 1e-4
    # And independently of the verifier: a batch of 3 (the exporter's example size is 3,
    # so use 4), a window longer than any seen, against the model's forward pass.
    tokens = torch.randint(
        0, tokenizer.vocab_size, (4, 29), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        logits, _ = model(tokens)
        expected = torch.log_softmax(logits.float(), -1).numpy()
    layers, parts, _, hidden = result.runtime["state"]["shape"]
    zeros = np.zeros((layers, parts, 4, hidden), np.float32)
    window = ort.InferenceSession(result.files["window"])
    got, _ = window.run(None, {"tokens": tokens.numpy(), "state": zeros})
    assert np.abs(got - expected).max() < 1e-4
    assert np.allclose(np.exp(got).sum(-1), 1, atol=1e-4)  # a full normalized distribution
    step, state = ort.InferenceSession(result.files["step"]), zeros
    for t in range(3):
        got, state = step.run(None, {"tokens": tokens[:, t].numpy(), "state": state})
        assert np.abs(got - expected[:, t]).max() < 1e-4


def test_the_files_a_runtime_needs(tokenizer, tmp_path):
    model = tiny_model(tokenizer.vocab_size, cell="lstm", layers=2, hidden_size=40)
    path = tmp_path / "tiny.safetensors"
    save_model(path, model, tokenizer, {})
    result = export_checkpoint(path, tmp_path / "out", verify_tokens=64)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["model.json", "step.onnx", "tokenizer.model", "window.onnx"]
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info == result.runtime
    import hashlib

    assert info["checkpoint"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["vocab_size"] == tokenizer.vocab_size
    assert info["line_start_token"] == tokenizer.newline_id
    assert info["state"]["shape"] == [2, 2, "batch", 40] and info["state"]["parts"] == ["h", "c"]
    assert info["tokenizer"]["kind"] == "bpe" and info["opset"] >= 18
    # No provenance in this checkpoint: it was verified on text the model sampled.
    assert info["verification"]["source"] == "text sampled from the model"
    assert info["verification"]["tokens"] == 64
    assert (tmp_path / "out" / "tokenizer.model").read_bytes() == tokenizer.proto
    import onnx

    for name in ("step.onnx", "window.onnx"):
        proto = onnx.load(str(tmp_path / "out" / name))
        onnx.checker.check_model(proto)
        assert [i.name for i in proto.graph.input] == ["tokens", "state"]
        assert [o.name for o in proto.graph.output] == ["logprobs", "state_out"]


def test_a_checkpoints_heldout_text_is_the_default(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_text(300))
    import rnngen

    run = rnngen.train(corpus, output=tmp_path / "m.safetensors", hidden=16, max_steps=4,
                       batch_size=4, seq_len=16, kind="char", device="cpu")  # fmt: skip
    result = export_checkpoint(run.checkpoint, tmp_path / "out", window=False, verify_tokens=50)
    assert result.verification.source == "held-out test split"  # as eval scores
    assert result.verification.window_max_abs_diff is None
    assert "window" not in result.files and not (tmp_path / "out" / "window.onnx").exists()
    data = tmp_path / "other.txt"
    data.write_text("the cat ran to the park.\n" * 5)
    result = export_checkpoint(run.checkpoint, tmp_path / "out2", data=data, verify_tokens=40)
    assert result.verification.source == str(data) and result.verification.tokens == 40


def test_a_wrong_export_fails_verification_and_writes_nothing(tokenizer, tmp_path):
    model = tiny_model(tokenizer.vocab_size, cell="gru")
    other = tiny_model(tokenizer.vocab_size, cell="gru", seed=1)
    models = export_models(other, window=False)
    with pytest.raises(RnngenError, match="does not match torch"):
        verify(models, model, heldout(tokenizer), "tiny text")


def test_bad_inputs(tokenizer, tmp_path, monkeypatch):
    with pytest.raises(RnngenError, match="unknown export format 'tflite'"):
        check_format("tflite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    model = tiny_model(tokenizer.vocab_size)
    with pytest.raises(RnngenError, match="cannot create output directory"):
        export_model(model, tokenizer, blocker / "out", heldout(tokenizer), "t")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(RnngenError, match="needs the onnxscript package.*rnngen\\[export\\]"):
        require_packages()


def checkpoint_for(tmp_path: Path, kind: str, cell: str) -> Path:
    tokenizer = train_tokenizer(tiny_text(300).split("\n"), TokenizerConfig(kind=kind))
    model = tiny_model(tokenizer.vocab_size, cell=cell)
    path = tmp_path / f"{kind}.safetensors"
    save_model(path, model, tokenizer, {})
    return path


def rnngen_sample(path: Path, prompt: str, length: int) -> bytes:
    from typer.testing import CliRunner

    from rnngen.cli import app

    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, ["sample", str(path), "--temp", "0", "--prompt", prompt,
                                          "--no-echo", "--length", str(length),
                                          "--precision", "fp32", "-q"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


@pytest.mark.parametrize("kind, cell", [("bpe", "lstm"), ("word", "rnn")])
def test_the_sampling_script_needs_no_torch_and_equals_rnngen_sample(tmp_path, kind, cell):
    path = checkpoint_for(tmp_path, kind, cell)
    export_checkpoint(path, tmp_path / "out", verify_tokens=32)
    # torch and rnngen cannot be imported by the script: modules of those names that fail.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("torch", "rnngen"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is blocked here')\n")
    env = {"PYTHONPATH": str(blocked), "PATH": "/usr/bin:/bin"}
    for prompt in ("the cat", "", f"a dog {UNSEEN}\nthe"):
        script = subprocess.run(
            [sys.executable, str(SCRIPT), str(tmp_path / "out"), "--prompt", prompt,
             "--length", "40"], capture_output=True, env=env, timeout=120,
        )  # fmt: skip
        assert script.returncode == 0, script.stderr.decode()
        assert script.stdout == rnngen_sample(path, prompt, 40)
        assert script.stdout.decode("utf-8")  # valid UTF-8 whatever the model samples


def test_the_script_without_a_window_model(tmp_path):
    path = checkpoint_for(tmp_path, "bpe", "gru")
    export_checkpoint(path, tmp_path / "out", window=False, verify_tokens=32)
    command = [sys.executable, str(SCRIPT), str(tmp_path / "out"), "--prompt", "the red"]
    script = subprocess.run([*command, "--length", "25"], capture_output=True, timeout=120)
    assert script.returncode == 0, script.stderr.decode()
    assert script.stdout == rnngen_sample(path, "the red", 25)


# -- the command ---------------------------------------------------------------------------


def invoke(*args):
    from typer.testing import CliRunner

    from rnngen.cli import app

    result = CliRunner().invoke(app, ["export", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_command_writes_and_reports(tmp_path):
    path = checkpoint_for(tmp_path, "bpe", "gru")
    result = invoke(str(path), "-o", str(tmp_path / "out"), "--verify-tokens", "40", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verification"]["tokens"] == 40 and report["sizes"]["step"] > 0
    assert sorted(report["files"]) == ["runtime", "step", "tokenizer", "window"]
    assert "verified with onnxruntime" in result.stderr
    table = invoke(str(path), "-o", str(tmp_path / "out2"), "--no-window", "--verify-tokens", "20")
    assert table.exit_code == 0 and "step.onnx" in table.stdout and "window" not in table.stdout


def test_the_python_api_is_the_command(tmp_path, monkeypatch):
    import rnngen

    path = checkpoint_for(tmp_path, "bpe", "lstm")
    monkeypatch.chdir(tmp_path)
    result = rnngen.export(path, verify_tokens=20, window=False)
    assert Path(result.directory) == Path("export") / "bpe"  # export/CHECKPOINT-NAME
    assert (tmp_path / "export" / "bpe" / "model.json").exists()


@pytest.mark.parametrize("case", ["format", "package", "unwritable", "checkpoint"])
def test_bad_inputs_are_one_line(tmp_path, monkeypatch, case):
    path = checkpoint_for(tmp_path, "bpe", "lstm")
    out, options = tmp_path / "out", []
    if case == "format":
        options, fragment = ["--format", "tflite"], "unknown export format 'tflite'"
    elif case == "package":
        monkeypatch.setitem(sys.modules, "onnx", None)
        fragment = "needs the onnx package"
    elif case == "unwritable":
        out.write_text("a file")
        fragment = "cannot create output directory"
    else:
        path, fragment = tmp_path / "missing.safetensors", "does not exist"
    result = invoke(str(path), "-o", str(out), *options)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert fragment in result.stderr and result.stdout == ""
