"""Options the user gets wrong: files they may not read, and options that contradict each
other (issue 25). Every case is rnngen's own one-line `error: ...`: exit 1 for a file, exit 2
(a usage error) naming both options for a contradiction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import tiny_text
from rnngen.cli import app

OLD = Path(__file__).parent / "fixtures" / "old_char.safetensors"


def cli(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_one_error_line(result, fragments: tuple[str, ...], code: int) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code and result.stdout == "", (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]


@pytest.fixture
def files(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(60))
    shutil.copy(corpus, tmp_path / "held.txt")
    shutil.copy(OLD, tmp_path / "m.safetensors")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "first", "second"),
    [
        (["eval", "m.safetensors", "--mix", "0.5", "--no-mix"], "--mix", "--no-mix"),
        (["eval", "--mix", "fit", "--no-mix"], "--mix", "--no-mix"),
        (["score", "m.safetensors", "--ngram", "--mix", "fit"], "--ngram", "--mix"),
        (["score", "m.safetensors", "--ngram", "--dynamic"], "--ngram", "--dynamic"),
        (["sample", "m.safetensors", "--ngram", "--mix", "0.5"], "--ngram", "--mix"),
        (["tokenize", "corpus.txt", "--valid", "held.txt", "--valid-frac", "0.1"], "--valid",
         "--valid-frac"),
        (["tokenize", "corpus.txt", "--test", "held.txt", "--test-frac", "0.2"], "--test",
         "--test-frac"),
        (["train", "corpus.txt", "--valid", "held.txt", "--valid-frac", "0.1", "-o", "t/m.st"],
         "--valid", "--valid-frac"),
        (["train", "corpus.txt", "--preset", "awd", "--size", "small"], "--preset", "--size"),
        (["train", "corpus.txt", "--init-from", "m.safetensors", "--resume"], "--init-from",
         "--resume"),
    ],
)  # fmt: skip
def test_contradicting_options_are_a_usage_error_naming_both(files, monkeypatch, args, first,
                                                             second):  # fmt: skip
    monkeypatch.chdir(files)
    assert_one_error_line(cli(*args, input="a line\n"), (first, second), code=2)
    assert not (files / "t").exists()  # refused before any work


def test_a_share_of_zero_beside_a_file_is_no_contradiction(files, monkeypatch):
    monkeypatch.chdir(files)
    result = cli("tokenize", "corpus.txt", "--valid", "held.txt", "--valid-frac", "0", "-q")
    assert result.exit_code == 0, result.stderr


UNREADABLE_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from rnngen.cli import app

results = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, args, input="a line\\n")
    results.append([args, result.exit_code, result.stderr])
print(json.dumps(results))
"""


def unreadable_cases(locked_text: str, locked_model: str) -> list[list[str]]:
    """Every command with a file option or argument, given a file it may not read."""
    good, text = "m.safetensors", "corpus.txt"
    return [
        ["train", text, "--init-from", locked_model, "-o", "ft/m.safetensors"],
        ["train", text, "--valid", locked_text, "-o", "v/m.safetensors"],
        ["train", text, "--test", locked_text, "-o", "v/m.safetensors"],
        ["train", locked_text, "-o", "v/m.safetensors"],
        ["tokenize", text, "--valid", locked_text, "-o", "tok"],
        ["tokenize", locked_text, "-o", "tok"],
        ["eval", good, "--data", locked_text],
        ["eval", good, "--data", text, "--train", locked_text],
        ["ngram", locked_text, "--test", text],
        ["ngram", text, "--test", locked_text],
        ["sample", locked_model, "--length", "2"],
        ["score", locked_model],
        ["score", good, locked_text],
        ["info", locked_model],
        ["gradients", good, "--data", locked_text],
        ["plot", "locked.metrics.jsonl"],
    ]


def test_unreadable_files_are_rnngens_own_one_line_error(files):
    """Typer checked readability itself and answered its usage box with exit 2; rnngen's own
    checks say what is wrong, exit 1. As root, the check needs a process without
    CAP_DAC_OVERRIDE (setpriv), which reads any file otherwise."""
    for name in ("locked.txt", "locked.metrics.jsonl"):
        shutil.copy(files / "corpus.txt", files / name)
    shutil.copy(OLD, files / "locked.safetensors")
    for name in ("locked.txt", "locked.metrics.jsonl", "locked.safetensors"):
        os.chmod(files / name, 0)
    cases = unreadable_cases("locked.txt", "locked.safetensors")
    command = [sys.executable, "-c", UNREADABLE_SCRIPT, json.dumps(cases)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: every file is readable")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
                   *command]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=files, timeout=300)
    if done.returncode != 0 and "setpriv" in done.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(cases)
    for args, code, stderr in results:
        lines = stderr.strip().splitlines()
        assert code == 1 and lines and "Usage" not in stderr, (args, code, stderr)
        assert lines[-1].startswith("error: ") and "locked" in lines[-1], (args, stderr)
        assert "Permission denied" in lines[-1] or "not readable" in lines[-1], (args, stderr)
