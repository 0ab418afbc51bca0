"""`rnngen train` against careless and hostile use: nothing lost, nothing half-written, one
line for every bad input (issue 16: --force, the output lock, odd paths, options). SIGTERM,
Ctrl-C and two real trainers on one output: test_process.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import run_cli, tiny_text
from rnngen.checkpoint import state_path
from rnngen.training.files import lock_output

SMALL = ["--layers", "1", "--hidden", "16", "--embed", "16", "--batch-size", "4",
         "--seq-len", "16", "--device", "cpu", "--precision", "fp32", "--quiet"]  # fmt: skip


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_text(300))
    return path


def train(*args: str):
    """`rnngen train ...` in this process (fast: no interpreter start, torch imported once)."""
    from rnngen.cli import app

    return CliRunner().invoke(app, ["train", *args])


def one_line_error(result, fragment: str = "") -> str:
    """Assert the contract for a user-fixable error and return the message."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture
def trained(corpus, tmp_path):
    """A finished run's three files, and their bytes."""
    out = tmp_path / "ck" / "m.safetensors"
    result = train(str(corpus), "-o", str(out), "--max-steps", "6", *SMALL)
    assert result.exit_code == 0, result.output
    files = [out, state_path(out), out.with_name("m.metrics.jsonl")]
    return out, {path: path.read_bytes() for path in files}


# -- item 1: --force replaces only an rnngen checkpoint, never an input -------------------------


def test_force_never_replaces_the_corpus(corpus, tmp_path):
    target = tmp_path / "corp.safetensors"
    target.write_bytes(corpus.read_bytes())
    one_line_error(train(str(target), "-o", str(target), "--force", *SMALL), "an input")
    assert target.read_bytes() == corpus.read_bytes()


def test_force_never_replaces_a_validation_file(trained, corpus):
    out, before = trained
    valid = state_path(out)
    one_line_error(train(str(corpus), "--valid", str(valid), "-o", str(out), "--force", *SMALL))
    assert all(path.read_bytes() == data for path, data in before.items())


def test_force_never_replaces_a_foreign_file(corpus, tmp_path):
    target = tmp_path / "notes.safetensors"
    target.write_text("my notes\n")
    one_line_error(train(str(corpus), "-o", str(target), "--force", *SMALL), "only rnngen")
    assert target.read_text() == "my notes\n"


def test_a_resume_file_alone_is_not_overwritten_without_force(trained, corpus):
    out, before = trained
    out.unlink()  # a run stopped before its first evaluation leaves only its resume file
    one_line_error(train(str(corpus), "-o", str(out), *SMALL), "--resume")
    assert state_path(out).read_bytes() == before[state_path(out)]


# -- item 2: one run per output -------------------------------------------------------------------


def test_second_run_on_the_same_output_is_refused(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    lock = lock_output(out)  # as a running trainer holds it
    try:
        message = one_line_error(train(str(corpus), "-o", str(out), *SMALL), "being trained")
        assert f"pid {os.getpid()}" in message and not out.exists()
    finally:
        lock.release()
    assert not (tmp_path / ".m.safetensors.lock").exists()
    assert train(str(corpus), "-o", str(out), "--max-steps", "3", *SMALL).exit_code == 0
    assert leftovers(tmp_path) == []  # the lock file goes with its run


# -- item 3: --force keeps the old run's files until the new run has its own ---------------------


def test_force_run_that_fails_early_keeps_the_old_history(trained, corpus, monkeypatch):
    out, before = trained
    from rnngen.errors import RnngenError
    from rnngen.training.loop import Trainer

    def full_disk(self):
        yield from ()
        raise RnngenError("cannot write: No space left on device")

    monkeypatch.setattr(Trainer, "run", full_disk)
    one_line_error(train(str(corpus), "-o", str(out), "--force", *SMALL), "No space")
    assert all(path.read_bytes() == data for path, data in before.items())
    assert leftovers(out.parent) == []  # no temporary metrics, no lock


def test_force_run_replaces_the_history_at_its_first_save(trained, corpus):
    out, before = trained
    result = train(str(corpus), "-o", str(out), "--force", "--max-steps", "4", *SMALL)
    assert result.exit_code == 0, result.output
    metrics = out.with_name("m.metrics.jsonl")
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert max(line["step"] for line in lines) == 4  # the new run's, not appended to the old
    assert leftovers(out.parent) == []


# -- item 4: a run that cannot produce a checkpoint says so -------------------------------------


def test_run_without_a_finite_validation_loss_fails(corpus, tmp_path, monkeypatch):
    import rnngen.training.loop

    monkeypatch.setattr(
        rnngen.training.loop,
        "model_logprobs",
        lambda model, ids, *a, **k: np.full(len(ids) - 1, np.nan),
    )
    out = tmp_path / "m.safetensors"
    one_line_error(train(str(corpus), "-o", str(out), "--max-steps", "3", *SMALL), "no checkpoint")
    assert not out.exists()


@pytest.mark.parametrize(
    "option,value,fragment",
    [
        ("--eval-tokens", "1", "--eval-tokens"),
        ("--eval-tokens", "-5", "--eval-tokens"),
        ("--eval-every", "-1", "--eval-every"),
        ("--seed", str(2**64), "--seed"),
        ("--seed", str(10**30), "--seed"),
        ("--min-lr-ratio", "2", "--min-lr-ratio"),
    ],
)
def test_bad_options_fail_before_any_work(tmp_path, option, value, fragment):
    missing = tmp_path / "no-such-corpus.txt"  # the option is named first, before the corpus
    one_line_error(train(str(missing), option, value, *SMALL), fragment)
    assert not (Path("checkpoints")).exists()


# -- item 13: odd output paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    "output,fragment",
    [
        ("", "not a file name"),
        ("/", "not a file name"),
        (".", "not a file name"),
        ("x" * 250, "too long"),
    ],
)
def test_odd_output_paths(corpus, output, fragment):
    one_line_error(train(str(corpus), "-o", output, *SMALL), fragment)


def test_output_under_a_regular_file(corpus):
    one_line_error(train(str(corpus), "-o", f"{corpus}/m", *SMALL), "cannot write")


def test_output_that_is_a_directory(corpus, tmp_path):
    (tmp_path / "d.safetensors").mkdir()
    one_line_error(train(str(corpus), "-o", str(tmp_path / "d"), *SMALL), "directory")


# -- item 16: what killed runs left behind is removed -------------------------------------------


def dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_temporaries_of_dead_runs_are_removed(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    stale = tmp_path / f".m.safetensors.{dead_pid()}.0123abcd.tmp"
    live = tmp_path / f".m.state.safetensors.{os.getpid()}.0123abcd.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    one_line_error(train(str(tmp_path / "none.txt"), "-o", str(out), *SMALL), "does not exist")
    assert not stale.exists() and live.exists()


# -- item 19: messages that do not mislead ------------------------------------------------------


def test_tokenized_directory_ignores_no_split_options(corpus, tmp_path):
    tokenized = tmp_path / "tok"
    assert run_cli("tokenize", str(corpus), "-o", str(tokenized), "--quiet").returncode == 0
    out = str(tmp_path / "m.safetensors")
    one_line_error(train(str(tokenized), "--valid", str(corpus), "-o", out, *SMALL), "tokenize")


def test_tokenized_directory_without_validation_names_tokenize(corpus, tmp_path):
    tokenized = tmp_path / "tok"
    args = ("tokenize", str(corpus), "-o", str(tokenized), "--valid-frac", "0", "--test-frac", "0")
    assert run_cli(*args, "--quiet").returncode == 0
    out = str(tmp_path / "m.safetensors")
    message = one_line_error(train(str(tokenized), "-o", out, *SMALL), "tokenize")
    assert "give --valid FILE" not in message
