"""Issue 16, outputs: every write is whole or absent, and every failure is one line.

Odd output paths, caches, stale temporaries and unreadable inputs go through the CLI
in-process. The real process's cases (stdout to /dev/full or a closed pipe, a full disk by
RLIMIT_FSIZE) are in test_process.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import listing, one_error_line, untrained_checkpoint
from rnngen.cli import app

HAS_DEV_FULL = os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny char model (conftest.untrained_checkpoint)."""
    return untrained_checkpoint(tmp_path_factory)


# --- stdout: a full device, a closed pipe ----------------------------------------------------


# --- files: a full disk leaves nothing behind -------------------------------------------------


def test_a_cache_path_that_is_a_file_is_one_line(tmp_path, tiny_corpus, monkeypatch):
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.cache import cached_tokenize
    from rnngen.corpus.splits import split_tail
    from rnngen.errors import RnngenError

    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path / "cachefile"))
    with pytest.raises(RnngenError, match="token cache directory.*RNNGEN_CACHE.*is a file"):
        cached_tokenize(split_tail(tiny_corpus, 0.1, 0.0), TokenizerConfig(kind="char"))


# --- odd output paths -------------------------------------------------------------------------


@pytest.fixture
def blocker(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


def odd_outputs(tmp_path: Path, blocker: Path) -> dict[str, str]:
    return {
        "empty": "",
        "root": "/",
        "long": str(tmp_path / ("n" * 300)),
        "under a file": str(blocker / "sub" / "x"),
    }


@pytest.mark.parametrize("case", ["empty", "root", "long", "under a file"])
@pytest.mark.parametrize("command", ["tokenize", "synth", "arpa"])
def test_odd_output_paths_are_one_line(tmp_path, tiny_corpus, blocker, case, command):
    out = odd_outputs(tmp_path, blocker)[case]
    args = {
        "tokenize": ["tokenize", str(tiny_corpus), "--kind", "char", "-q", "-o", out],
        "synth": ["synth", "--lines", "5", "-q", "-o", out],
        "arpa": ["ngram", str(tiny_corpus), "--test", str(tiny_corpus), "-q", "--arpa", out],
    }[command]
    before = listing(tmp_path)
    result = cli(*args)
    assert result.exit_code == 1, result.output
    one_error_line(result.stderr)
    assert listing(tmp_path) == before
    assert blocker.read_text() == "not a directory\n"


def test_a_fifo_or_symlink_output_is_written_through_never_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = cli("synth", "--lines", "5", "-q", "-o", str(fifo))
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and received[0].count("\n") == 5
    target = tmp_path / "target.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert cli("synth", "--lines", "3", "-q", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and target.read_text().count("\n") == 3


# --- unreadable inputs: `error:` and exit 1, never Typer's usage box --------------------------


@pytest.fixture
def odd_inputs(tmp_path) -> dict[str, Path]:
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nothing-here")
    directory = tmp_path / "adir"
    directory.mkdir()
    return {"loop": loop, "dangling": dangling, "directory": directory}


@pytest.mark.parametrize("kind", ["loop", "dangling", "directory"])
def test_unreadable_inputs_are_one_line_exit_1(tiny_corpus, odd_inputs, kind):
    bad = str(odd_inputs[kind])
    corpus = str(tiny_corpus)
    for args in (
        ["tokenize", corpus, "--valid", bad, "-q"],
        ["tokenize", corpus, "--test", bad, "-q"],
        ["tokenize", bad, "-q"],
        ["ngram", bad, "--test", corpus, "-q"],
        ["ngram", corpus, "--test", bad, "-q"],
        ["ngram", "--words", corpus, "--test", bad, "-q"],
        ["info", bad],
    ):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        one_error_line(result.stderr)


@pytest.mark.parametrize("option", ["--data", "--train", "checkpoint", "score-file"])
def test_unreadable_inputs_of_eval_and_score(checkpoint, odd_inputs, option):
    text = str(checkpoint.parent / "text.txt")
    for bad in map(str, odd_inputs.values()):
        args = {
            "--data": ["eval", str(checkpoint), "--data", bad, "--train", text],
            "--train": ["eval", str(checkpoint), "--data", text, "--train", bad],
            "checkpoint": ["sample", bad],
            "score-file": ["score", str(checkpoint), bad],
        }[option]
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        one_error_line(result.stderr)


def test_the_ngram_cache_is_optional(tmp_path, monkeypatch):
    """An unwritable n-gram cache costs a rebuild next time, never the result."""
    import numpy as np

    from rnngen.scoring.trained_on import cached_ngram

    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path / "cachefile"))
    ids = np.array([1, 2, 3, 1, 2, 3, 4] * 20)
    model, cached = cached_ngram(ids, 3, 5, "sha")
    assert not cached and model.order == 3
    assert (tmp_path / "cachefile").read_text() == "x"


def test_stale_temporaries_next_to_an_output_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".synth.txt.{dead}.0123abcd.tmp"
    stale.write_text("half a corpus, left by kill -9")
    live = tmp_path / f".synth.txt.{os.getpid()}.0123abcd.tmp"
    live.write_text("a live writer's")
    assert cli("synth", "--lines", "3", "-q", "-o", str(tmp_path / "synth.txt")).exit_code == 0
    assert not stale.exists() and live.exists()
    assert (tmp_path / "synth.txt").read_text().count("\n") == 3


@pytest.fixture
def immutable_dir(tmp_path):
    """A directory nobody may write in, root included (chattr +i), where the system allows."""
    path = tmp_path / "immutable"
    path.mkdir()
    try:
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except OSError:
        made = False
    if not made:
        pytest.skip("chattr +i is not available here")
    yield path
    subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def test_an_immutable_output_directory_is_one_line(tiny_corpus, immutable_dir):
    for args in (
        ["tokenize", str(tiny_corpus), "-q", "-o", str(immutable_dir / "tok")],
        ["synth", "--lines", "3", "-q", "-o", str(immutable_dir / "s.txt")],
        ["ngram", str(tiny_corpus), "--test", str(tiny_corpus), "-q", "--arpa",
         str(immutable_dir / "m.arpa")],
        ["tokenize", "-", "-q", "-o", str(immutable_dir / "tok")],
    ):  # fmt: skip
        result = cli(*args, input=tiny_corpus.read_text())
        assert result.exit_code == 1, (args, result.output)
        one_error_line(result.stderr, "Operation not permitted")
    assert list(immutable_dir.iterdir()) == []


def test_the_atomic_writer_never_replaces_a_device_and_keeps_symlinks(tmp_path):
    """As root a rename over /dev/full would swap the device for a regular file."""
    from rnngen import atomic
    from rnngen.errors import RnngenError

    for device in ("/dev/full", "/dev/null"):
        with pytest.raises(RnngenError, match="not a regular file"):
            atomic.write_text(device, "x")
    assert not Path("/dev/full").is_file()
    target, link = tmp_path / "target.txt", tmp_path / "link.txt"
    target.write_text("old")
    link.symlink_to(target)
    atomic.write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
