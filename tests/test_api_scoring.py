"""One door for scoring: eval, score, gradients and ngram give identical figures from the CLI
and from the API (the CLI is options and rendering over rnngen.api), with no option pinned;
and a checkpoint's data and n-grams are looked up once per command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import tiny_text
from rnngen.cli import app


def cli(*args: str, input: str | None = None):
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import rnngen

    folder = tmp_path_factory.mktemp("scoring")
    (folder / "corpus.txt").write_text(tiny_text(300))
    output = folder / "checkpoints" / "tiny.safetensors"
    rnngen.train(str(folder / "corpus.txt"), output=str(output), layers=1, hidden=16, embed=16,
                 kind="char", max_steps=5)  # fmt: skip
    return output


def test_eval_from_the_cli_and_the_api(checkpoint):
    import rnngen

    args = ["--ngram-order", "3", "--dynamic", "--dynamic-segment", "8"]
    result = cli("eval", str(checkpoint), "--json", "-q", *args)
    lines = []
    report = rnngen.compare(checkpoint, ngram_order=3, dynamic=rnngen.DynamicConfig(segment=8),
                            progress=lines.append)  # fmt: skip
    expected = json.loads(json.dumps(report.to_json()))
    assert json.loads(result.stdout) == expected
    assert any(line.startswith("rnn: scored") for line in lines)
    assert report.keep_for_plot() == checkpoint.with_name("tiny.eval.json")
    assert json.loads(checkpoint.with_name("tiny.eval.json").read_text()) == expected


@pytest.mark.parametrize("options", [{}, {"mix": "fit"}, {"ngram": True}, {"dynamic": True},
                                     {"mix": 0.25, "dynamic": True}])  # fmt: skip
def test_score_from_the_cli_and_the_api(checkpoint, tmp_path, options):
    """A file whose last line has no newline: the CLI scores it as given, and so does
    `scores(..., complete_lines=False)`; streamed either way."""
    import rnngen

    text = "the cat sat.\na dog ran to the park.\nthe end"
    (tmp_path / "lines.txt").write_text(text)
    flags = [f"--{k}" if v is True else f"--{k}={v}" for k, v in options.items()]
    result = cli("score", str(checkpoint), str(tmp_path / "lines.txt"), "-q", "--ngram-order",
                 "3", *flags)  # fmt: skip
    lm = rnngen.load(checkpoint)
    scores = lm.scores(iter(text.splitlines(keepends=True)), ngram_order=3,
                       complete_lines=False, **options)  # fmt: skip
    assert not isinstance(scores, list)  # an iterator: a line in, a score out
    expected = [{"text": s.text, "tokens": s.tokens, "logprob": s.logprob, "ppl": s.ppl}
                for s in scores]  # fmt: skip
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected
    # score(): the list, each line completed with its newline
    listed = lm.score(text.splitlines(), ngram_order=3, **options)
    assert [s.logprob for s in listed[:2]] == [e["logprob"] for e in expected[:2]]
    assert listed[2].tokens == expected[2]["tokens"] + 1


def test_score_refuses_what_the_cli_refuses(checkpoint):
    import rnngen
    from rnngen.errors import RnngenError, UsageError

    lm = rnngen.load(checkpoint)
    with pytest.raises(UsageError, match="^ngram and mix contradict"):
        lm.scores(["a"], ngram=True, mix="fit")
    with pytest.raises(RnngenError, match="^ngram_order must be between 1 and 9, got 12"):
        lm.score(["a"], ngram=True, ngram_order=12)
    with pytest.raises(RnngenError, match="^lines must be an iterable of str"):
        lm.scores("a line")
    result = CliRunner().invoke(app, ["score", str(checkpoint), "--ngram", "--mix", "fit"])
    assert result.exit_code == 2 and "--ngram and --mix contradict" in result.output


def test_gradients_from_the_cli_and_the_api(checkpoint, tmp_path):
    import rnngen.api

    args = ["--max-lag", "5", "--positions", "8", "--batch-size", "4"]
    result = cli("gradients", str(checkpoint), "--json", "-q", *args)
    lines = []
    [measured] = rnngen.api.gradients(checkpoint, max_lag=5, positions=8, batch_size=4,
                                  plot=tmp_path / "g.png", progress=lines.append)  # fmt: skip
    [shown] = json.loads(result.stdout)["checkpoints"]
    expected = {"checkpoint": str(checkpoint), "label": measured.label,
                "data": measured.source, **measured.flow.as_dict()}  # fmt: skip
    assert shown == json.loads(json.dumps(expected))
    assert (tmp_path / "g.png").stat().st_size > 0 and lines[-1] == f"wrote {tmp_path / 'g.png'}"
    from rnngen.errors import RnngenError

    with pytest.raises(RnngenError, match="^max_lag must be between 0 and 5000"):
        rnngen.api.gradients(checkpoint, max_lag=-1)


def test_ngram_from_the_cli_and_the_api(tmp_path):
    import rnngen.api

    (tmp_path / "train.txt").write_text(tiny_text(200))
    (tmp_path / "test.txt").write_text(tiny_text(40, seed=1))
    train, test = str(tmp_path / "train.txt"), str(tmp_path / "test.txt")
    for words in (False, True):
        flags = ["--words"] if words else ["--kind", "char"]
        result = cli("ngram", train, "--test", test, "--order", "3", "--json", "-q", *flags)
        report = rnngen.api.ngram(train, test, order=3, words=words, kind="char")
        shown = json.loads(result.stdout)
        assert shown.pop("build_seconds") >= 0
        expected = report.to_json()
        expected.pop("build_seconds")
        assert shown == json.loads(json.dumps(expected))


def test_eval_looks_the_checkpoint_up_once(checkpoint, monkeypatch):
    """The tokenized corpus is opened once and the training ids hashed once per eval, and the
    n-gram's cache key is the one it always had (old caches stay valid)."""
    import rnngen
    from rnngen.scoring import trained_on as checkpoint_data

    opened, hashed = [], []
    load_stored, ids_digest = checkpoint_data.load_stored, checkpoint_data.ids_digest
    monkeypatch.setattr(
        checkpoint_data, "load_stored", lambda d: opened.append(d) or load_stored(d)
    )
    monkeypatch.setattr(checkpoint_data, "ids_digest", lambda i: hashed.append(1) or ids_digest(i))
    lm = rnngen.load(checkpoint)
    report = rnngen.compare(lm, ngram_order=3)
    assert len(opened) == len(set(opened)) >= 1 and len(hashed) == 1 and report.ngram.order == 3
    from rnngen.scoring.baseline import CheckpointData

    data = CheckpointData(lm.provenance, lm.tokenizer)
    ids, _ = data.training_ids()
    tokenizer = lm.tokenizer
    for order in (1, 3):
        old_key = checkpoint_data.ngram_key(ids, order, tokenizer.vocab_size, tokenizer.sha256)
        assert data.ngram(order).key == old_key and data.ngram(order).cached


def test_the_scoring_commands_reach_the_library_through_the_api():
    """cli/ modules of eval, score, gradients, ngram, export and neighbors import nothing of
    the library but rnngen.api, rnngen.errors and rnngen.config (and the CLI's own)."""
    import ast

    cli_dir = Path(__file__).resolve().parents[1] / "rnngen" / "cli"
    allowed = ("rnngen.api", "rnngen.errors", "rnngen.config", "rnngen.cli")
    names = ("eval", "eval_report", "gradients", "ngram", "export", "neighbors")
    for name in names:
        tree = ast.parse((cli_dir / f"{name}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}  # fmt: skip
        imported |= {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
        library = {n for n in imported if n == "rnngen" or n.startswith("rnngen.")}
        assert library, name  # the file was found and read
        assert all(n.startswith(allowed) for n in library), (name, library)
