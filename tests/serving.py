"""Helpers for the server's tests: a tiny checkpoint, and `rnngen serve` as a real process on
a free 127.0.0.1 port (the port the server picked is read from its startup line)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from conftest import tiny_text


def tiny_checkpoint(folder: Path, name: str = "tiny") -> Path:
    import torch

    from rnngen.checkpoint import save_model
    from rnngen.config import ModelConfig, TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer
    from rnngen.model import RNNLM

    tokenizer = train_tokenizer(tiny_text(200).split("\n"), TokenizerConfig(kind="bpe"))
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, embed_size=64,
                         layers=1, dropout=0.0, embed_dropout=0.0)  # fmt: skip
    path = folder / f"{name}.safetensors"
    save_model(path, RNNLM(config).eval(), tokenizer, {"metrics": {"step": 1}})
    return path


class ServerProcess:
    """`python -m rnngen serve ...` on port 0; `.url` once it listens; stderr kept."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 120):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rnngen", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )  # fmt: skip
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
            if found and not self.url:
                self.url = found.group(1)
                self.ready.set()
        self.ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=30).json()

    def stats(self, model: str = "tiny") -> dict:
        return self.health()["models"][model]

    def wait_for(self, predicate, what: str, timeout: float = 60) -> None:
        """Poll /health until predicate(stats) holds (bounded; not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.stats()):
                return
            time.sleep(0.05)
        raise AssertionError(f"never: {what}; last stats {self.stats()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def sse_events(response: httpx.Response) -> list[str]:
    """The `data:` payloads of a text/event-stream response, in order, checking the framing:
    every event is one `data: ...` line followed by a blank line."""
    events = []
    buffer = ""
    for text in response.iter_text():
        buffer += text
        while "\n\n" in buffer:
            event, buffer = buffer.split("\n\n", 1)
            assert event.startswith("data: ") and "\n" not in event, repr(event)
            events.append(event[len("data: ") :])
    assert buffer == "", repr(buffer)
    return events
