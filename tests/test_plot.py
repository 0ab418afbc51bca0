"""`rnngen plot`: learning curves from what a run left on disk (the files, not the pixels)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import run_cli, tiny_text
from rnngen.cli import app
from rnngen.errors import RnngenError
from rnngen.plot.figures import curves_figure, save_figure, unique_labels
from rnngen.plot.runs import load_run

PANELS = (
    "Validation bits per character (faint: training loss)",
    "Validation bits per character by training time",
    "Gradient norm before clipping",
    "Learning rate",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny real run: its checkpoint and NAME.metrics.jsonl."""
    directory = tmp_path_factory.mktemp("run")
    corpus = directory / "tiny.txt"
    corpus.write_text(tiny_text())
    out = directory / "tiny.safetensors"
    result = run_cli("train", str(corpus), "--layers", "1", "--hidden", "16", "--embed", "16",
                     "--max-steps", "20", "--log-every", "2", "--kind", "char", "-q",
                     "-o", str(out), env={"RNNGEN_CACHE": str(directory / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def cli(*args: str):
    """In-process (torch and matplotlib imported once); a bare `--help`: test_process.py."""
    return CliRunner().invoke(app, list(args))


def metrics_file(path: Path, records: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def crafted(chars_per_token: float, steps: int = 40, back_to: int | None = None) -> list[dict]:
    """Records as `rnngen train` writes them, for a tokenizer of `chars_per_token`."""
    records = []
    for step in range(2, steps + 1, 2):
        if back_to is not None and step == steps // 2 + 2:  # a rollback: steps restart
            for again in range(back_to, steps // 2 + 1, 2):
                records.append(_step(again, 0.5))
        records.append(_step(step, 1.0))
        if step % 10 == 0:
            loss = 4.0 - step / 20
            records.append({"event": "eval", "step": step, "valid_loss": loss,
                            "valid_bpc": loss / (math.log(2) * chars_per_token)})  # fmt: skip
    return records


def _step(step: int, norm: float) -> dict:
    return {"event": "step", "step": step, "loss": 4.0 - step / 25, "grad_norm": norm * step,
            "lr": 1e-3, "elapsed": step * 0.1, "clipped_share": 0.5}  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_a_real_run_gives_a_png_and_prints_its_path(trained, tmp_path):
    out = tmp_path / "curves.png"
    result = run_cli("plot", str(trained), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}\n"
    assert png_size(out) == (1800, 1200)


def test_the_svg_holds_every_panel_and_the_runs_label(trained, tmp_path):
    out = tmp_path / "curves.svg"
    assert cli("plot", str(trained), "-o", str(out)).exit_code == 0
    svg = out.read_text()
    for text in (*PANELS, "lstm 1x16 char", "clip bound", "training seconds"):
        assert text in svg, text
    assert "bits/char:" not in svg  # no eval references cached: no reference lines


def test_default_output_is_next_to_the_run(trained):
    metrics = trained.with_name("tiny.metrics.jsonl")
    result = cli("plot", str(metrics), "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{trained.with_name('tiny.png')}\n"
    png_size(trained.with_name("tiny.png"))


def test_runs_with_different_tokenizers_overlay_per_character(trained, tmp_path):
    bpe = metrics_file(tmp_path / "bpe.metrics.jsonl", crafted(chars_per_token=3.0))
    runs = [load_run(trained), load_run(bpe)]
    assert runs[0].chars_per_token == pytest.approx(1.0)  # a char tokenizer
    assert runs[1].chars_per_token == pytest.approx(3.0)
    assert runs[1].train_bpc[0] == pytest.approx(runs[1].loss[0] / (math.log(2) * 3.0))
    out = tmp_path / "overlay.svg"
    result = cli("plot", str(trained), str(bpe), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    svg = out.read_text()
    assert "lstm 1x16 char" in svg and ">bpe<" in svg


def test_same_configuration_is_told_apart_by_name(tmp_path):
    runs = [load_run(metrics_file(tmp_path / f"{n}.metrics.jsonl", crafted(1.0))) for n in "ab"]
    runs[0].label = runs[1].label = "lstm 1x16 char"
    unique_labels(runs)
    assert [r.label for r in runs] == ["lstm 1x16 char (a)", "lstm 1x16 char (b)"]


def test_eval_references_and_reference_option_are_drawn(trained, tmp_path):
    report = {"rows": [{"name": "lstm 1x16", "bits_per_char": 3.0},
                       {"name": "kneser-ney 5-gram", "bits_per_char": 2.345},
                       {"name": "oracle (true entropy)", "bits_per_char": 1.25}]}  # fmt: skip
    run = tmp_path / "ref.metrics.jsonl"
    metrics_file(run, crafted(1.0))
    (tmp_path / "ref.eval.json").write_text(json.dumps(report))
    assert load_run(run).references == {"kneser-ney 5-gram": 2.345, "oracle (true entropy)": 1.25}
    out = tmp_path / "ref.svg"
    result = cli("plot", str(run), "--reference", "my guess=2.0", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    svg = out.read_text()
    for text in ("kneser-ney 5-gram: 2.345", "oracle (true entropy): 1.250", "my guess: 2.000"):
        assert text in svg, text


def test_a_truncated_last_line_is_skipped_with_a_warning(trained, tmp_path):
    whole = trained.with_name("tiny.metrics.jsonl").read_text()
    killed = tmp_path / "killed.metrics.jsonl"
    killed.write_text(whole + '{"event": "step", "step": 22, "lo')
    assert load_run(killed).skipped_lines == 1
    result = cli("plot", str(killed), "-o", str(tmp_path / "k.png"))
    assert result.exit_code == 0, result.stderr
    assert "skipped 1 line" in result.stderr


def test_deeply_nested_lines_are_skipped_like_any_broken_line(tmp_path):
    """Nesting deep enough for the JSON decoder's RecursionError is a line that is no record,
    not a traceback; eval's NAME.eval.json nested so is no reference."""
    run = metrics_file(tmp_path / "deep.metrics.jsonl", crafted(1.0), "[" * 5000 + "]" * 5000)
    (tmp_path / "deep.eval.json").write_text('{"rows": ' + "[" * 5000 + "]" * 5000 + "}")
    assert load_run(run).skipped_lines == 1 and load_run(run).references == {}
    result = cli("plot", str(run), "-o", str(tmp_path / "deep.png"))
    assert result.exit_code == 0 and "skipped 1 line" in result.stderr, result.stderr


def test_many_runs_make_a_taller_figure_not_a_warning(tmp_path):
    """A legend of 100 runs below the panels: the figure grows to hold it (matplotlib's
    constrained layout would otherwise shrink the panels to nothing and warn on stderr)."""
    import warnings

    paths = [metrics_file(tmp_path / f"run_with_a_long_name_{i}.metrics.jsonl", crafted(1.0, 10))
             for i in range(100)]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli("plot", *map(str, paths), "-o", str(tmp_path / "many.png"))
    assert result.exit_code == 0, result.stderr
    assert not [w for w in caught if "layout" in str(w.message)], [str(w.message) for w in caught]
    width, height = png_size(tmp_path / "many.png")
    assert (width, height) == (1800, 1200 + 32 * 0.25 * 150)  # 12 x 8 in, + 32 legend rows


def test_a_rollback_drops_the_undone_steps_and_is_marked(tmp_path):
    run = load_run(metrics_file(tmp_path / "r.metrics.jsonl", crafted(1.0, back_to=12)))
    assert run.rollbacks == [12]
    assert list(run.step) == sorted(set(run.step))  # one history, no zigzag
    assert run.grad_norm[list(run.step).index(12)] == 6.0  # the redone step, not the undone one
    save_figure(curves_figure([run]), tmp_path / "r.png")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.txt", "hello\n", "is not a run"),
        ("junk.metrics.jsonl", "not json\n[1, 2]\n", "not a metrics file"),
        ("binary.metrics.jsonl", b"\xff\xfe\x00", "not UTF-8"),
        ("lonely.safetensors", b"\x00" * 16, "no metrics file"),
    ],
)
def test_a_file_that_is_no_run_is_one_error_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RnngenError, match=message):
        load_run(path)
    result = cli("plot", str(path), "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("output", ["missing/x.png", "x.jpg"])
def test_a_bad_output_path_fails_before_writing_anything(trained, tmp_path, output):
    result = cli("plot", str(trained), "-o", str(tmp_path / output))
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_bad_reference_is_an_error(trained):
    result = cli("plot", str(trained), "--reference", "5-gram")
    assert result.exit_code == 1 and "NAME=BITS_PER_CHAR" in result.stderr


def test_lesson_figures_draw_from_data(tmp_path):
    from rnngen.plot.figures import Curve, agreement_figure, gradients_figure, norm_traces_figure

    clipped = load_run(metrics_file(tmp_path / "a.metrics.jsonl", crafted(1.0, back_to=12)))
    clipped.clip = 5.0
    free = load_run(metrics_file(tmp_path / "b.metrics.jsonl", crafted(1.0)))
    save_figure(norm_traces_figure([clipped, free]), tmp_path / "norms.svg")
    svg = (tmp_path / "norms.svg").read_text()
    assert "of steps clipped" in svg and "rollback" in svg
    counts = {"1-2": 10, ">10": 5}
    accuracy = {"5-gram": {"1-2": 0.7, ">10": 0.5}, "lstm": {"1-2": 0.9, ">10": float("nan")}}
    save_figure(agreement_figure(counts, accuracy), tmp_path / "agreement.svg")
    assert "&gt;10 words" in (tmp_path / "agreement.svg").read_text()  # SVG escapes ">"
    lags = np.arange(4)
    flat = Curve("x", lags, np.array([1.0, 0.1, 0.0, 0.0]), np.ones(4))
    save_figure(gradients_figure([flat], relative=False), tmp_path / "flow.svg")
    assert "relative to k = 0" not in (tmp_path / "flow.svg").read_text()


def test_eval_leaves_its_figures_for_plot(tmp_path):
    """`rnngen eval` on the checkpoint's own held-out text writes NAME.eval.json beside it,
    which plot reads for its reference lines; an eval on other text does not."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(200))
    out = tmp_path / "m.safetensors"
    trained = run_cli(
        "train", str(corpus), "-o", str(out), "--hidden", "16", "--kind", "char",
        "--max-steps", "3", "--batch-size", "4", "--seq-len", "16", "-q",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    other = tmp_path / "other.txt"
    other.write_text(tiny_text(20, seed=3))
    assert run_cli("eval", str(out), "--data", str(other), "-q").returncode == 0
    assert not (tmp_path / "m.eval.json").exists()
    result = run_cli("eval", str(out), "--json", "--ngram-order", "3", "-q")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m.eval.json").read_text()) == json.loads(result.stdout)
