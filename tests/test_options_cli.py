"""Options the user gets wrong: files they may not read, and options that contradict each
other (issue 25). Every case is rnngen's own one-line `error: ...`: exit 1 for a file, exit 2
(a usage error) naming both options for a contradiction."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rnngen.cli import app


def cli(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_one_error_line(result, fragments: tuple[str, ...], code: int) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code and result.stdout == "", (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]


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
