"""Shared fixtures: tiny corpora written by the tests themselves, and the ../shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(tiny_text())
    return path


def run_cli(*args: str, input: str | None = None, cwd: Path | None = None, env=None):
    """Run `python -m rnngen` as a real subprocess: separate stdout and stderr, real exit code."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
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
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


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
