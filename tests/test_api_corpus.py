"""`rnngen tokenize`, `synth` and `info` through the one door: the CLI calls rnngen.api, and the
same call from Python gives the same files and figures (stdin "-" included)."""

from __future__ import annotations

import io
import json

from typer.testing import CliRunner

from conftest import tiny_text
from rnngen import api
from rnngen.cli import app


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != "meta.json"}


def _meta(directory):
    meta = json.loads((directory / "meta.json").read_text())
    meta.pop("created", None)
    return meta


def test_tokenize_cli_and_api_write_the_same_directory(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(tiny_text(200))
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(app, ["tokenize", "c.txt", "-o", "cli", "--kind", "char", "-q"])
    assert run.exit_code == 0, run.output
    seen = []
    result = api.tokenize("c.txt", "api", kind="char", on_progress=lambda *a: seen.append(a))
    assert _files(tmp_path / "cli") == _files(tmp_path / "api")
    assert _meta(tmp_path / "cli") == _meta(tmp_path / "api") == result.meta
    assert seen and seen[-1][0] == seen[-1][1] == corpus.stat().st_size


def test_tokenize_reads_stdin_through_the_api_as_the_cli_does(tmp_path, monkeypatch):
    text = tiny_text(200)
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(app, ["tokenize", "-", "--kind", "char", "-q"], input=text)
    assert run.exit_code == 0, run.output
    cli = tmp_path / "tokenized" / "stdin"
    (tmp_path / "c.txt").write_text(text)
    api.tokenize("c.txt", "from-file", kind="char")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    api.tokenize("-", "from-stdin", kind="char")
    assert _files(cli) == _files(tmp_path / "from-stdin") == _files(tmp_path / "from-file")
    counts = [{n: s["tokens"] for n, s in _meta(d)["splits"].items()}
              for d in (cli, tmp_path / "from-stdin")]  # fmt: skip
    assert counts[0] == counts[1]
    for folder in (tmp_path, cli.parent):  # the spooled copy of stdin is gone
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_synth_and_info_are_the_clis(tmp_path):
    out = tmp_path / "s.txt"
    run = CliRunner().invoke(app, ["synth", "-o", str(out), "--lines", "40", "--json", "-q"])
    assert run.exit_code == 0, run.output
    stream = io.StringIO()
    summary = api.synth(stream, lines=40)
    assert stream.getvalue() == out.read_text()
    assert json.loads(run.stdout)["bits_per_char"] == summary.bits_per_char
    api.tokenize(out, tmp_path / "tok", kind="char")
    found = api.info(tmp_path / "tok")
    run = CliRunner().invoke(app, ["info", str(tmp_path / "tok"), "--json"])
    assert run.exit_code == 0, run.output
    assert found.kind == "tokenized"
    assert json.loads(run.stdout) == json.loads(
        json.dumps({"path": str(found.path), **found.record})
    )


# The CLI modules of the training and corpus commands, which reach the library through the
# door alone (the other commands' modules are checked as they move behind it too).
DOOR_MODULES = ["train", "training_run", "tokenize", "synth", "info", "plot"]
ALLOWED = {"rnngen.api", "rnngen.errors", "rnngen.config", "rnngen"}


def test_the_training_and_corpus_commands_use_the_api_alone():
    from pathlib import Path

    from test_architecture import imports_of

    cli = Path(__file__).parent.parent / "rnngen" / "cli"
    found = [cli / f"{name}.py" for name in DOOR_MODULES]
    assert all(path.is_file() for path in found)
    for path in found:
        library = {
            name for name in imports_of(path)
            if name.startswith("rnngen") and not name.startswith("rnngen.cli")
        }  # fmt: skip
        assert library <= ALLOWED, (path.name, library - ALLOWED)
