"""Every user of the atomic writer, on a disk that fills up: one RnngenError naming the path,
and nothing left behind (no temporary, no half-written file)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_text
from rnngen.errors import RnngenError


@pytest.fixture
def full_disk(monkeypatch):
    """A disk that is full when the written bytes are flushed (every atomic write fsyncs)."""

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def fails_cleanly(write, path: Path) -> None:
    with pytest.raises(RnngenError) as info:
        write()
    assert path.name in str(info.value)
    assert list(path.parent.iterdir()) == [], "something was left behind"


def ngram():
    from rnngen.ngram import KneserNey

    return KneserNey.fit(np.arange(200) % 7, 3, 7)


def test_ngram_cache_file(tmp_path, full_disk):
    model = ngram()
    fails_cleanly(lambda: model.save(tmp_path / "m.safetensors"), tmp_path / "m.safetensors")


def test_arpa(tmp_path, full_disk):
    from rnngen.ngram.kenlm import write_arpa

    model = ngram()
    names = [f"w{i}" for i in range(7)]
    fails_cleanly(lambda: write_arpa(model, tmp_path / "m.arpa", names), tmp_path / "m.arpa")


def test_synth(tmp_path, full_disk):
    from rnngen.synth import generate_corpus

    path = tmp_path / "synth.txt"
    fails_cleanly(lambda: generate_corpus(path, n_chars=2000), path)


def test_tokenize(tmp_path, full_disk):
    import rnngen

    corpus = tmp_path / "in" / "corpus.txt"
    corpus.parent.mkdir()
    corpus.write_text(tiny_text(50))
    out = tmp_path / "out" / "tok"
    out.parent.mkdir()
    fails_cleanly(lambda: rnngen.tokenize(corpus, out, kind="char"), out)


def test_checkpoint(tmp_path, full_disk):
    from rnngen.checkpoint import save_model
    from rnngen.config import ModelConfig, TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer
    from rnngen.model import RNNLM

    tokenizer = train_tokenizer(tiny_text(20).splitlines(), TokenizerConfig(kind="char"))
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, embed_size=8, layers=1)
    path = tmp_path / "m.safetensors"
    fails_cleanly(lambda: save_model(path, RNNLM(config), tokenizer, {}), path)
