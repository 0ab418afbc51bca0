"""Conventions every command shares: exit codes, one-line errors, stdout for data only."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import run_cli
from rnngen.cli import app

runner = CliRunner()


def test_unknown_command_exits_2():
    assert run_cli("frobnicate").returncode == 2


def assert_one_line_error(result, fragment: str):
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_corpus(tmp_path):
    assert_one_line_error(run_cli("tokenize", str(tmp_path / "nope.txt")), "does not exist")


def test_directory_corpus(tmp_path):
    assert_one_line_error(run_cli("tokenize", str(tmp_path)), "is a directory")


def test_empty_corpus(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(run_cli("tokenize", str(tmp_path / "empty.txt")), "is empty")


def test_whitespace_corpus(tmp_path):
    (tmp_path / "ws.txt").write_text(" \n\t\n  \n" * 50)
    result = run_cli("tokenize", str(tmp_path / "ws.txt"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "only whitespace")
    assert not (tmp_path / "out").exists()


def test_binary_corpus_names_offset(tmp_path):
    (tmp_path / "bin.dat").write_bytes(b"hello\nworld\n" + bytes(range(256)))
    assert_one_line_error(run_cli("tokenize", str(tmp_path / "bin.dat")), "NUL byte at offset 12")


def test_invalid_utf8_names_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine line\nbad \xff here\n" * 3)
    assert_one_line_error(run_cli("tokenize", str(tmp_path / "bad.txt")), "offset 14")


def test_invalid_utf8_deep_in_file_leaves_no_output(tmp_path, tiny_corpus):
    data = tiny_corpus.read_bytes() * 40 + b"late \xc3\x28 error\n" + tiny_corpus.read_bytes()
    (tmp_path / "late.txt").write_bytes(data)
    out = tmp_path / "out"
    result = run_cli("tokenize", str(tmp_path / "late.txt"), "-o", str(out))
    assert_one_line_error(result, "not valid UTF-8")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_vocab_too_small_through_cli(tiny_corpus, tmp_path):
    result = run_cli("tokenize", str(tiny_corpus), "--vocab-size", "10", "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "needs at least")


def test_bad_fraction(tiny_corpus):
    assert_one_line_error(
        run_cli("tokenize", str(tiny_corpus), "--valid-frac", "0.9"), "--valid-frac"
    )


def test_tokenize_writes_everything(tiny_corpus, tmp_path):
    out = tmp_path / "tok"
    result = run_cli("tokenize", str(tiny_corpus), "-o", str(out), "--kind", "char", "--json")
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert set(meta["splits"]) == {"train", "valid", "test"}
    assert meta["tokenizer"]["kind"] == "char" and meta["dtype"] == "uint16"
    total = sum(s["bytes"] for s in meta["splits"].values())
    assert total == tiny_corpus.stat().st_size
    for name in ("tokenizer.model", "train.bin", "valid.bin", "test.bin", "meta.json"):
        assert (out / name).is_file()
    # The model file is a standard SentencePiece model.
    import numpy as np
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    ids = np.fromfile(out / "train.bin", dtype=np.uint16)
    assert len(ids) == meta["splits"]["train"]["tokens"]
    train_text = tiny_corpus.read_text()[: meta["splits"]["train"]["chars"]]
    assert sp.decode(ids.tolist()) == train_text
    assert train_text.endswith("\n")  # splits never cut a line


def test_tokenize_stdin_and_given_splits(tiny_corpus, tmp_path):
    valid = tmp_path / "valid.txt"
    valid.write_text("a cat sat.\nthe dog ran.\n")
    out = tmp_path / "tok"
    result = run_cli(
        "tokenize",
        "-",
        "--valid",
        str(valid),
        "-o",
        str(out),
        "--json",
        input=tiny_corpus.read_text(),
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert set(meta["splits"]) == {"train", "valid"}
    assert meta["splits"]["valid"]["chars"] == len(valid.read_text())
    assert meta["splits"]["train"]["chars"] == len(tiny_corpus.read_text())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rnngen-stdin")]


def test_progress_goes_to_stderr_and_quiet_silences(tiny_corpus, tmp_path):
    result = run_cli("tokenize", str(tiny_corpus), "-o", str(tmp_path / "a"))
    assert "tokenize:" in result.stderr and "tokenize:" not in result.stdout
    assert "split" in result.stdout  # the summary table is data
    result = run_cli("tokenize", str(tiny_corpus), "-o", str(tmp_path / "b"), "--quiet")
    assert result.returncode == 0 and result.stderr == ""


def test_info_on_tokenized_dir(tiny_corpus, tmp_path):
    out = tmp_path / "tok"
    assert run_cli("tokenize", str(tiny_corpus), "-o", str(out), "-q").returncode == 0
    result = runner.invoke(app, ["info", str(out), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["tokenizer"]["kind"] == "bpe"
    result = run_cli("info", str(tmp_path / "missing"))
    assert_one_line_error(result, "does not exist")


def test_rerun_replaces_output_but_refuses_foreign_dir(tiny_corpus, tmp_path):
    out = tmp_path / "tok"
    assert run_cli("tokenize", str(tiny_corpus), "-o", str(out), "-q").returncode == 0
    assert (
        run_cli("tokenize", str(tiny_corpus), "-o", str(out), "-q", "--kind", "char").returncode
        == 0
    )
    assert '"char"' in (out / "meta.json").read_text()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = run_cli("tokenize", str(tiny_corpus), "-o", str(foreign))
    assert_one_line_error(result, "not an rnngen tokenized directory")
    assert (foreign / "notes.txt").read_text() == "keep me"
