"""Issue 16, inputs: stdin (binary, invalid UTF-8, closed), FIFOs and `<(...)`, invalid UTF-8
deep in a file, stale spools, and a temperature too small for fp32."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_output_cli import checkpoint, one_error_line  # noqa: F401 (a fixture)
from typer.testing import CliRunner

from conftest import tiny_text
from rnngen.cli import app


def cli(*args: str, input=None):
    return CliRunner().invoke(app, list(args), input=input)


class NoStdinRunner(CliRunner):
    """CliRunner with no stdin at all (sys.stdin None, as after `<&-`)."""

    @contextlib.contextmanager
    def isolation(self, *args, **kwargs):
        with super().isolation(*args, **kwargs) as streams:
            sys.stdin = None  # the runner puts its own stdin back afterwards
            yield streams


# --- stdin ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"fine line\n\x00\x01\x02 binary\n", "stdin looks binary: NUL byte at offset 10 (line 2)"),
        (b"fine line\nbad \xff byte\n", "stdin is not valid UTF-8: bad byte 0xff at offset 14"),
    ],
)
def test_score_stdin_binary_or_invalid_utf8(checkpoint, data, fragment):  # noqa: F811
    result = cli("score", str(checkpoint), input=data)
    assert result.exit_code == 1
    one_error_line(result.stderr, fragment)
    assert result.stdout.count("\n") == 1  # the good first line was scored, streamed


@pytest.mark.parametrize(
    "args",
    [
        ["score", "CHECKPOINT"],
        ["sample", "CHECKPOINT", "--prompt", "-", "--length", "3"],
        ["tokenize", "-"],
        ["train", "-", "--max-steps", "1"],
    ],
)
def test_a_closed_stdin_is_one_line(checkpoint, tmp_path, monkeypatch, args):  # noqa: F811
    """In process with sys.stdin None, as Python leaves it under `<&-` (real: test_process)."""
    args = [str(checkpoint) if a == "CHECKPOINT" else a for a in args]
    monkeypatch.chdir(tmp_path)
    result = NoStdinRunner().invoke(app, args, env={"NO_COLOR": "1", "OMP_NUM_THREADS": "1"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    one_error_line(result.stderr, "stdin is closed")
    assert not [p for p in tmp_path.rglob("*") if "stdin" in p.name]


def test_stdin_corpus_errors_name_stdin_and_leave_no_spool(tmp_path):
    out = tmp_path / "tok"
    for data, fragment in [
        (b"", "stdin is empty"),
        (b"abc\n" * 10 + b"\xc3(\n", "stdin is not valid UTF-8: bad byte 0xc3 at offset 40"),
        (b"one line only\n", "stdin has too few lines"),
    ]:
        result = cli("tokenize", "-", "-o", str(out), "-q", input=data)
        assert result.exit_code == 1
        one_error_line(result.stderr, fragment)
        assert list(tmp_path.iterdir()) == []  # no spool, no output


def test_a_stale_spool_of_a_dead_process_is_removed(tmp_path, tiny_corpus):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".rnngen-stdin.txt.{dead}.0123abcd.tmp"
    stale.write_text("left by kill -9\n")
    live = tmp_path / f".rnngen-stdin.txt.{os.getpid()}.0123abcd.tmp"
    live.write_text("a live run's spool\n")
    result = cli("tokenize", "-", "-o", str(tmp_path / "tok"), "-q", input=tiny_corpus.read_text())
    assert result.exit_code == 0, result.output
    assert not stale.exists() and live.exists()


# --- invalid UTF-8 after the first MiB --------------------------------------------------------


@pytest.fixture
def late_bad_file(tmp_path) -> Path:
    path = tmp_path / "late.txt"
    good = ("the cat sat on the mat\n" * 60000).encode()  # about 1.4 MB
    path.write_bytes(good + b"bad \xfe here\n")
    return path


def test_score_file_invalid_utf8_after_a_mib(checkpoint, late_bad_file):  # noqa: F811
    result = cli("score", str(checkpoint), str(late_bad_file))
    assert result.exit_code == 1
    one_error_line(result.stderr, f"bad byte 0xfe at offset {late_bad_file.stat().st_size - 7}")
    assert result.stdout == ""  # checked before the first line is scored


def test_ngram_words_invalid_utf8_after_a_mib(late_bad_file, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("a b c\n")
    for args in (
        ["ngram", "--words", str(late_bad_file), "--test", str(small)],
        ["ngram", "--words", str(small), "--test", str(late_bad_file)],
    ):
        result = cli(*args, "-q")
        assert result.exit_code == 1
        one_error_line(result.stderr, "is not valid UTF-8: bad byte 0xfe")


# --- FIFOs and process substitution -----------------------------------------------------------


def feed(fifo: Path, text: str) -> threading.Thread:
    """A writer for a FIFO, as `<(...)` or `mkfifo` plus a background writer give."""

    def write():
        with open(fifo, "w") as f:
            f.write(text)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_single_pass_readers_stream_a_fifo(checkpoint, fifo, tmp_path):  # noqa: F811
    text = tiny_text(50)
    plain = tmp_path / "plain.txt"
    plain.write_text(text)
    base = ["eval", str(checkpoint), "--train", str(plain), "--json", "-q"]
    feed(fifo, text)
    through_fifo = cli(*base, "--data", str(fifo))
    assert through_fifo.exit_code == 0, through_fifo.output
    assert through_fifo.stdout.replace(str(fifo), "X") == cli(
        *base, "--data", str(plain)
    ).stdout.replace(str(plain), "X")  # not "empty": the same figures as from a file
    feed(fifo, "one line\ntwo lines\n")
    scored = cli("score", str(checkpoint), str(fifo))
    assert scored.exit_code == 0 and scored.stdout.count("\n") == 2
    for mode in ([], ["--words"]):
        feed(fifo, text)
        result = cli("ngram", *mode, str(fifo), "--test", str(plain), "--json", "-q")
        expected = cli("ngram", *mode, str(plain), "--test", str(plain), "--json", "-q")
        drop = ("build_seconds",)
        got, want = json.loads(result.stdout), json.loads(expected.stdout)
        assert {k: v for k, v in got.items() if k not in drop} == {
            k: v for k, v in want.items() if k not in drop
        }


def test_a_corpus_fifo_is_refused_without_waiting_for_a_writer(fifo):
    # No writer ever comes: opening the FIFO would block forever; the check must not open it.
    result = cli("tokenize", str(fifo), "-q")
    assert result.exit_code == 1
    one_error_line(result.stderr, "is a pipe or device, not a regular file")


# --- temperature ------------------------------------------------------------------------------


@pytest.mark.parametrize("temp", ["1e-46", "1e-45", "5e-324", "1e-38"])
def test_a_temperature_too_small_for_fp32_is_greedy(checkpoint, temp):  # noqa: F811
    # fp32: bf16 logits of an untrained model tie often, and ties may break either way
    base = [str(checkpoint), "--length", "30", "-q", "--json", "--seed", "3", "--precision", "fp32"]
    greedy = cli("sample", *base, "--temp", "0")
    tiny = cli("sample", *base, "--temp", temp)
    assert tiny.exit_code == 0, tiny.output
    got, want = json.loads(tiny.stdout), json.loads(greedy.stdout)
    assert got["text"] == want["text"] and len(got["text"]) > 0


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"\0" * 100_000, "--prompt -: stdin looks binary: NUL byte at offset 0"),
        (b"ROMEO:\n\xc3", "--prompt -: stdin is not valid UTF-8: bad byte 0xc3 at offset 7"),
    ],
)
def test_a_binary_prompt_on_stdin_is_one_line(checkpoint, data, fragment):  # noqa: F811
    result = cli("sample", str(checkpoint), "--prompt", "-", "--length", "3", input=data)
    assert result.exit_code == 1 and result.stdout == ""
    one_error_line(result.stderr, fragment)
