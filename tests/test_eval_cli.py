"""eval, score, ngram and synth through the command line."""

from __future__ import annotations

import json

import pytest

from conftest import TINYSHAKESPEARE, requires_shared, run_cli

SMALL = [
    "--hidden",
    "48",
    "--embed",
    "48",
    "--layers",
    "1",
    "--batch-size",
    "8",
    "--seq-len",
    "32",
    "--quiet",
]


def test_eval_defaults_to_newest_checkpoint_and_rows_share_targets(trained):
    result = run_cli("eval", "--json", "-q", cwd=trained)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert {"kneser-ney 5-gram", "unigram", "oracle (true entropy)"} <= set(rows)
    assert len({row["tokens"] for row in rows.values()}) == 1  # identical targets
    assert report["targets"] == report["characters"]  # char tokenizer: every character scored
    oracle = rows["oracle (true entropy)"]
    assert oracle["bits_per_char"] < rows["unigram"]["bits_per_char"]
    assert set(report["agreement"]["items"]) == {"1-2", "3-5", "6-10", ">10"}
    assert sum(report["agreement"]["items"].values()) > 20


def test_eval_table_on_stdout_logs_on_stderr(trained):
    result = run_cli("eval", cwd=trained)
    assert result.returncode == 0
    assert "oracle (true entropy)" in result.stdout and "agreement" in result.stdout
    assert "5-gram" in result.stderr and "oracle" not in result.stderr


def test_second_eval_uses_the_cached_ngram(trained):
    run_cli("eval", "--json", cwd=trained)  # the first eval of this session's run, or not
    result = run_cli("eval", "--json", cwd=trained)
    assert "from cache" in result.stderr


def test_eval_when_the_corpus_moved(tmp_path):
    corpus = tmp_path / "synth.txt"
    assert run_cli("synth", "-o", str(corpus), "--lines", "200", "-q").returncode == 0
    result = run_cli(
        "train", str(corpus), "--max-steps", "3", "--kind", "char", *SMALL, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    moved = corpus.rename(tmp_path / "elsewhere.txt")
    empty_cache = {"RNNGEN_CACHE": str(tmp_path / "empty-cache")}
    result = run_cli("eval", cwd=tmp_path, env=empty_cache)
    assert result.returncode == 1 and "--data FILE" in result.stderr
    result = run_cli("eval", "--data", str(moved), cwd=tmp_path, env=empty_cache)
    assert result.returncode == 1 and "--train FILE" in result.stderr
    result = run_cli(
        "eval", "--data", str(moved), "--train", str(moved), cwd=tmp_path, env=empty_cache
    )
    assert result.returncode == 0, result.stderr
    # With the token cache still there, the moved corpus is not needed at all.
    assert run_cli("eval", cwd=tmp_path).returncode == 0


def test_eval_errors(trained, tmp_path):
    assert "none found" in run_cli("eval", cwd=tmp_path).stderr
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    result = run_cli("eval", str(tmp_path / "junk.safetensors"))
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    truncated = tmp_path / "cut.safetensors"
    data = (trained / "checkpoints" / "synth.safetensors").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result = run_cli("eval", str(truncated))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    result = run_cli("eval", "--ngram-order", "12", cwd=trained)
    assert result.returncode == 1 and "--ngram-order" in result.stderr
    result = run_cli("eval", str(trained / "checkpoints" / "synth.state.safetensors"))
    assert result.returncode == 1 and "is a resume file" in result.stderr


def test_score_ngram_and_file(trained, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("the dog was here.\n\nsecond line\n")
    model = trained / "checkpoints" / "synth.safetensors"
    result = run_cli("score", "--ngram", str(model), str(lines))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == ["the dog was here.", "", "second line"]
    assert records[1]["tokens"] == 1  # the newline alone


def test_ngram_words_mode_and_arpa(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("a b c\na b d\nb c d\n\na c\n")
    test = tmp_path / "test.txt"
    test.write_text("a b c\ne f")  # an unseen word, no final newline
    arpa = tmp_path / "m.arpa"
    result = run_cli(
        "ngram",
        str(train),
        "--test",
        str(test),
        "--words",
        "--order",
        "3",
        "--json",
        "--arpa",
        str(arpa),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tokens"] == 7 and report["oovs"] == 2  # a b c </s> e f </s>
    assert report["ppl_including_oov"] > report["ppl_excluding_oov"] > 1
    assert arpa.read_text().startswith("\\data\\")


def test_ngram_tokens_mode(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("the cat sat on the mat.\n" * 50)
    result = run_cli("ngram", str(train), "--test", str(train), "--kind", "char", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["oovs"] == 0 and report["bits_per_char"] < 1.0
    result = run_cli("ngram", str(train), "--test", str(tmp_path / "no.txt"))
    assert result.returncode == 1 and "does not exist" in result.stderr


@requires_shared
def test_ngram_matches_kenlm_through_the_cli():
    reference = json.loads(
        (TINYSHAKESPEARE.parents[1] / "reference" / "kenlm-tinyshakespeare.json").read_text()
    )
    result = run_cli(
        "ngram",
        str(TINYSHAKESPEARE / "train.txt"),
        "--test",
        str(TINYSHAKESPEARE / "valid.txt"),
        "--words",
        "--order",
        "3",
        "--json",
    )
    report = json.loads(result.stdout)
    expected = reference["orders"]["3"]
    assert report["ppl_including_oov"] == pytest.approx(expected["ppl_including_oov"], rel=1e-4)
    assert report["ppl_excluding_oov"] == pytest.approx(expected["ppl_excluding_oov"], rel=1e-4)
    assert (report["tokens"], report["oovs"]) == (expected["tokens"], expected["oovs"])


def test_synth_is_deterministic_and_validates(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    assert run_cli("synth", "-o", str(a), "--lines", "50", "--seed", "3", "-q").returncode == 0
    result = run_cli("synth", "-o", str(b), "--lines", "50", "--seed", "3", "--json")
    assert json.loads(result.stdout)["lines"] == 50
    assert a.read_bytes() == b.read_bytes()
    stdout = run_cli("synth", "--size", "2k", "-q").stdout
    assert 2000 <= len(stdout) < 4000 and stdout.endswith("\n")
    assert run_cli("synth", "--size", "lots").returncode == 1
    assert run_cli("synth", "-o", str(tmp_path)).returncode == 1


def test_info_on_a_checkpoint(trained):
    model = trained / "checkpoints" / "synth.safetensors"
    result = run_cli("info", str(model), "--json")
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)
    assert fields["format"] == "rnngen/1" and fields["parameters"] > 0
    assert fields["model_config"]["hidden_size"] == 32 and fields["tokenizer_kind"] == "char"
    table = run_cli("info", str(model)).stdout
    assert "parameters" in table and "best validation" in table
    result = run_cli("info", str(trained / "checkpoints" / "synth.state.safetensors"))
    assert result.returncode == 1 and "resume file" in result.stderr
