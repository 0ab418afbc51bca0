"""Shared fixtures: tiny corpora written by the tests themselves, and the ../shared data."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

# A checkpoint written by an early rnngen (char tokenizer, records its provenance): what
# every later version must still load, sample, score and eval identically.
OLD = Path(__file__).parent / "fixtures" / "old_char.safetensors"

SHARED = Path(__file__).resolve().parents[2] / "shared"
TINYSHAKESPEARE = SHARED / "corpora" / "tinyshakespeare"

# A few lines in several scripts, written for these tests.
MULTILINGUAL = """The quick brown fox jumps over the lazy dog.
  Indented line with\ttabs\tand   runs of spaces\x20\x20
Ça va? Déjà vu, naïve façade — «guillemets» and ‘quotes’.
Grüße aus Köln: Straße, Maß, Fuß.
Москва — столица России; съешь же ещё этих мягких французских булок.
Ελληνικά: ξεσκεπάζω την ψυχοφθόρα βδελυγμία.
日本語のテキストと漢字、ひらがな、カタカナ。
中文：我能吞下玻璃而不伤身体。
한국어: 나는 유리를 먹을 수 있어요.
עברית: אני יכול לאכול זכוכית וזה לא מזיק לי.
العربية: أنا قادر على أكل الزجاج و هذا لا يؤلمني.
हिन्दी: मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती.
Emoji: 👩‍👩‍👧‍👦 🏳️‍🌈 😀👍🏽 and combining: e\u0301 a\u0308 n\u0303
Literal space marks ▁ ▁▁ and CRLF\r
Zero width\u200bjoiner and NBSP\u00a0here.

"""


def tiny_text(lines: int = 400, seed: int = 0) -> str:
    """A small deterministic English-like text for fast tests."""
    import random

    rng = random.Random(seed)
    words = "the a cat dog sat on mat ran to park big small red blue and then it was".split()
    out = []
    for _ in range(lines):
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + ".")
    return "\n".join(out) + "\n"


# After a word of large_alphabet_text: mostly nothing (the words of Chinese text run on), else
# ASCII punctuation, a space, or a line end.
_SEPARATORS = ["", ",", ", ", ".", ". ", "!", "?", ";", ":", " ", '"', ".\n", "!\n", "?\n"]
_SEPARATOR_WEIGHTS = [78, 5, 1, 2, 1, 0.5, 0.5, 0.5, 0.5, 2, 0.5, 2.5, 0.5, 0.5]


def large_alphabet_text(chars: int, seed: int = 0, ideographs: int = 7000) -> str:
    """Chinese-like text with thousands of distinct characters, for tokenizer tests and
    benchmarks (generated, so no corpus is downloaded or committed).

    A lexicon of words of 1-4 characters from the CJK Unified Ideographs block (U+4E00 on,
    drawn with Zipfian frequencies over `ideographs` code points), then words drawn with
    Zipfian frequencies, with ASCII punctuation, spaces and line ends between some of them.
    The character frequencies come out Zipfian, and there is structure beyond them (words)
    for merges and models to find; unlike real text, nothing beyond word frequencies.
    """
    import random

    rng = random.Random(seed)
    code_points = [chr(0x4E00 + i) for i in range(ideographs)]
    char_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(ideographs)))
    lexicon = [
        "".join(rng.choices(code_points, cum_weights=char_weights, k=length))
        for length in rng.choices([1, 2, 3, 4], weights=[3, 5, 2, 1], k=3 * ideographs)
    ]
    word_weights = list(
        itertools.accumulate(1 / (rank + 1) ** 1.05 for rank in range(len(lexicon)))
    )
    parts: list[str] = []
    size = 0
    while size < chars:
        words = rng.choices(lexicon, cum_weights=word_weights, k=max(chars // 4, 64))
        seps = rng.choices(_SEPARATORS, weights=_SEPARATOR_WEIGHTS, k=len(words))
        block = "".join(w + s for w, s in zip(words, seps, strict=True))
        parts.append(block)
        size += len(block)
    text = "".join(parts)[:chars]
    return text[: text.rfind("\n") + 1] or text + "\n"


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(tiny_text())
    return path


# The tests' models are tiny: one thread runs them fastest, and two threads per process spin
# against each other and against the machine's other work (issue 29: 35 s instead of 0.7 s for
# test_overfits_one_batch on 2 busy cores). So the session, the commands it runs and their
# processes use one thread (NO_COLOR: plain text to compare). The thread plans themselves
# (--threads, OMP_NUM_THREADS, the automatic count) are pinned by test_threads, which gives each
# command the environment it means. `_isolated` sets the one thread again before every test.
ONE_THREAD = {"NO_COLOR": "1", "OMP_NUM_THREADS": "1"}


class CliResult(NamedTuple):
    """What a command run left: the fields of subprocess.CompletedProcess the tests read."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, input: str | None = None, cwd: Path | None = None, env=None) -> CliResult:
    """Run `rnngen ARGS` in this process through typer's CliRunner: separate stdout and stderr
    and the exit code a real process would give, without paying for a new interpreter and
    torch's import (about 1.7 s a run). A failure that would print a traceback in a real
    process puts one on stderr here too (exit 1), so "no traceback" stays checked.

    Use `run_process` where the process itself is the subject (signals, pipes, start-up)."""
    import traceback

    import torch
    from typer.testing import CliRunner

    from rnngen.cli import app

    threads = torch.get_num_threads()  # a run may set it for its process (training)
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(
            app, [str(a) for a in args], input=input, env={**ONE_THREAD, **(env or {})},
            prog_name="rnngen",
        )  # fmt: skip
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return CliResult(result.exit_code, result.stdout, stderr)


def run_process(*args: str, input: str | None = None, cwd: Path | None = None, env=None):
    """Run `python -m rnngen` as a real subprocess: separate stdout and stderr, real exit code.
    For tests whose subject is the process (signals, pipes, closed streams, start-up)."""
    full_env = {**os.environ, **ONE_THREAD, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rnngen", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=600,
    )


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Each test runs in a fresh working directory (so ./checkpoints and ./tokenized are its
    own) and token caches go to a temporary directory, never the user's ~/.cache."""
    import torch

    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(1)  # see ONE_THREAD


# The shared tiny run's options: one small char LSTM, every file a run writes.
TRAINED_OPTIONS = ["--max-steps", "30", "--kind", "char", "--hidden", "32", "--embed", "32",
                   "--layers", "1", "--batch-size", "8", "--seq-len", "32", "--log-every", "2",
                   "--quiet"]  # fmt: skip


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """One tiny trained run for the whole session, trained once in this process: a folder
    holding synth.txt (400 lines of the built-in corpus, so eval has its oracle and agreement
    rows) and checkpoints/synth.safetensors with its metrics and resume files, the newest
    (only) checkpoint there. Tests only read it; a test that changes files copies it first
    (`copy_trained`)."""
    root = tmp_path_factory.mktemp("trained")
    env = {"RNNGEN_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    result = run_cli("synth", "-o", str(root / "synth.txt"), "--lines", "400", "-q", env=env)
    assert result.returncode == 0, result.stderr
    result = run_cli("train", "synth.txt", *TRAINED_OPTIONS, cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    assert (root / "checkpoints" / "synth.safetensors").is_file()
    return root


def copy_trained(trained: Path, to: Path) -> Path:
    """A copy of the shared run's folder, for a test that changes its files."""
    import shutil

    return Path(shutil.copytree(trained, to / "trained"))


requires_shared = pytest.mark.skipif(
    not TINYSHAKESPEARE.is_dir(), reason="../shared corpora not present (fresh clone)"
)


def interrupt_once_written(command: list[str], path: Path, timeout: float = 120):
    """Start `command`, wait until it has written `path`, send SIGINT; return the process."""
    import signal
    import time

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    return process


def untrained_checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained char model (1x16) beside a little text: for tests of files, streams
    and errors, where what the model says does not matter."""
    from rnngen.checkpoint import save_model
    from rnngen.config import ModelConfig, TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer
    from rnngen.model import RNNLM

    tokenizer = train_tokenizer(tiny_text(200).split("\n"), TokenizerConfig(kind="char"))
    model = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embed_size=16))
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    save_model(path, model.eval(), tokenizer, {"metrics": {"step": 1}})
    (path.parent / "text.txt").write_text(tiny_text(60))
    return path


def one_error_line(stderr: str, fragment: str = "") -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], stderr
    assert "Traceback" not in stderr, stderr


def listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.fixture
def files(tmp_path):
    """A corpus, a held-out copy of it and the old checkpoint, side by side in tmp_path."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(60))
    shutil.copy(corpus, tmp_path / "held.txt")
    shutil.copy(OLD, tmp_path / "m.safetensors")
    return tmp_path
