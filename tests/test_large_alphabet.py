"""Large alphabets: a subword vocabulary smaller than the corpus's alphabet, still lossless.

The corpus is generated Chinese-like text (tests/conftest.py, `large_alphabet_text`): about
two thousand distinct CJK ideographs in 40k characters, with Zipfian frequencies, so most of
them are rare and a vocabulary of a few hundred pieces must spell those in bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import large_alphabet_text, run_cli
from rnngen.cli import app
from rnngen.config import TokenizerConfig
from rnngen.corpus.alphabet import (
    FIXED_PIECES,
    LARGE_ALPHABET_VOCAB_SIZE,
    SPACE_MARK,
    plan_alphabet,
)
from rnngen.corpus.tokenizer import train_tokenizer

TEXT = large_alphabet_text(40_000, seed=17, ideographs=3000)
LINES = TEXT.split("\n")
COUNTS = Counter(TEXT)
ALPHABET = set(COUNTS) - {"\n"}
FULL = len((ALPHABET - {" "}) | {SPACE_MARK}) + FIXED_PIECES  # every character a piece


def test_the_corpus_has_a_large_zipfian_alphabet():
    counts = sorted((COUNTS[c] for c in ALPHABET), reverse=True)
    assert len(ALPHABET) > 1200 and FULL > 1400
    assert sum(counts[:300]) > 0.6 * sum(counts)  # a few hundred characters are most text
    assert counts.count(1) > 200  # and many appear once


@pytest.fixture(scope="module")
def tokenizers():
    """bpe and unigram at sizes from 300 (most characters in bytes) to full coverage."""
    sizes = [300, 600, 1000, FULL]
    return {
        (kind, size): train_tokenizer(LINES, TokenizerConfig(kind=kind, vocab_size=size))
        for kind in ("bpe", "unigram")
        for size in sizes
    }


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
@pytest.mark.parametrize("size", [300, 600, 1000, "full"])
def test_round_trip_at_every_vocabulary_size(tokenizers, kind, size):
    size = FULL if size == "full" else size
    tokenizer = tokenizers[kind, size]
    assert tokenizer.decode(tokenizer.encode_array(TEXT)) == TEXT
    assert tokenizer.vocab_size == size if kind == "bpe" else tokenizer.vocab_size <= size
    kept = ALPHABET & tokenizer.character_pieces
    assert tokenizer.coverage.sample == len(ALPHABET)
    if size < FULL:
        assert tokenizer.coverage.pieces == len(kept) < len(ALPHABET)
        # The commonest characters are the pieces: none left out is commoner than one kept.
        rarest_kept = min(COUNTS[c] for c in kept)
        assert all(COUNTS[c] <= rarest_kept for c in ALPHABET - kept)
    else:
        assert kept == ALPHABET


# Any text: CJK ideographs seen and unseen, and any other code point at all.
any_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x4E00 + 4000),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=120,
)


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=any_text)
def test_round_trip_any_text_with_a_small_vocabulary(tokenizers, kind, text):
    tokenizer = tokenizers[kind, 300]
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer.encode_array(text, piece_chars=7)) == text
    decoder = tokenizer.decoder()
    assert "".join(decoder.feed(i) for i in ids) == text and decoder.flush() == 0


def test_a_space_is_a_piece_even_when_the_sample_has_none():
    """A space that fell back to bytes would be those of "▁", and decode as "▁"."""
    tokenizer = train_tokenizer(TEXT.replace(" ", "").split("\n"), TokenizerConfig(vocab_size=400))
    assert " " in tokenizer.character_pieces
    assert tokenizer.decode(tokenizer.encode("a b  c ▁ d")) == "a b  c ▁ d"


def test_the_default_vocabulary_stays_small():
    """Full coverage would take FULL pieces; the default bound for large alphabets is 2048."""
    large = large_alphabet_text(60_000, seed=3, ideographs=6000)
    plan = plan_alphabet(large.split("\n"), "bpe", None)
    assert len(plan.alphabet) + FIXED_PIECES > LARGE_ALPHABET_VOCAB_SIZE
    assert plan.vocab_size == LARGE_ALPHABET_VOCAB_SIZE and plan.kept is not None
    assert len(plan.kept) < LARGE_ALPHABET_VOCAB_SIZE - FIXED_PIECES  # room left for merges
    small = plan_alphabet(["plain English text, a handful of letters"], "bpe", None)
    assert small.vocab_size == 1024 and small.kept is None  # as before


def test_incomplete_character_is_dropped_not_replaced(tokenizers):
    tokenizer = tokenizers["bpe", 300]
    rare = next(c for c in sorted(ALPHABET, key=COUNTS.get) if c not in tokenizer.character_pieces)
    ids = tokenizer.encode(rare + rare)  # six byte pieces
    assert len(ids) == 6
    decoder = tokenizer.decoder()
    assert [decoder.feed(i) for i in ids[:5]] == ["", "", rare, "", ""]
    assert decoder.flush() == 2
    assert decoder.feed(ids[0]) == "" and decoder.flush() == 1  # a fresh start after flush


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """`rnngen tokenize` with a vocabulary that leaves most characters out."""
    tmp = tmp_path_factory.mktemp("large")
    corpus = tmp / "zh.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp / "tok"
    result = run_cli("tokenize", str(corpus), "-o", str(out), "--vocab-size", "400", "--json")
    assert result.returncode == 0, result.stderr
    return corpus, out, json.loads(result.stdout), result.stderr


def test_meta_fallback_matches_a_direct_count(tokenized):
    corpus, out, meta, stderr = tokenized
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    pieces = {sp.id_to_piece(i) for i in range(sp.vocab_size()) if not sp.is_byte(i)}
    has_piece = {p.replace(SPACE_MARK, " ") for p in pieces if len(p) == 1}
    data = corpus.read_bytes()
    total_chars = total_fallback = 0
    for split in meta["splits"].values():
        text = data[split["start"] : split["end"]].decode("utf-8")
        fallback = [c for c in text if c not in has_piece]
        assert split["chars"] == len(text) and split["fallback_chars"] == len(fallback)
        assert split["fallback_bytes"] == len("".join(fallback).encode())
        total_chars, total_fallback = total_chars + len(text), total_fallback + len(fallback)
    assert 0.01 < total_fallback / total_chars < 0.5
    characters = meta["tokenizer"]["characters"]
    assert characters["pieces"] < characters["sample"] <= len(ALPHABET) + 1
    # One log line says it; rnngen info shows it per split.
    assert f"({total_fallback / total_chars:.2%}) fall back to UTF-8 byte pieces" in stderr
    info = run_cli("info", str(out))
    assert info.returncode == 0 and "in byte pieces" in info.stdout
    train = meta["splits"]["train"]
    assert f"{train['fallback_chars'] / train['chars']:.2%}" in info.stdout


def test_held_out_ids_decode_to_the_exact_text(tokenized):
    """eval divides by the characters and bytes of the decoded held-out text: exact whatever
    share of it is spelled in bytes."""
    from rnngen.corpus.store import load_tokenized

    corpus, out, meta, _ = tokenized
    loaded = load_tokenized(out)
    data = corpus.read_bytes()
    for name, split in meta["splits"].items():
        text = data[split["start"] : split["end"]].decode("utf-8")
        assert loaded.tokenizer.decode(loaded.ids(name)) == text


def test_sampling_never_writes_half_a_character(tokenized, tmp_path):
    """An untrained model on a 400-piece vocabulary samples mostly byte pieces: samples end
    inside characters, and stdout must still be valid UTF-8."""
    import torch

    from rnngen.checkpoint import save_model
    from rnngen.config import ModelConfig
    from rnngen.corpus.store import load_tokenized
    from rnngen.model import RNNLM

    tokenizer = load_tokenized(tokenized[1]).tokenizer
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embed_size=16)
    checkpoint = tmp_path / "tiny.safetensors"
    save_model(checkpoint, RNNLM(config).eval(), tokenizer, {"metrics": {"step": 1}})
    options = [str(checkpoint), "--seed", "5", "-q", "-n", "40", "--length", "9"]
    command = [sys.executable, "-m", "rnngen", "sample", *options]
    plain = subprocess.run(command, capture_output=True, timeout=300)  # stdout's real bytes
    assert plain.returncode == 0, plain.stderr
    plain_text = plain.stdout.decode("utf-8")  # strict: raises on half a character
    as_json = CliRunner().invoke(app, ["sample", *options, "--json"])
    assert as_json.exit_code == 0, as_json.output
    samples = [json.loads(line) for line in as_json.stdout_bytes.decode("utf-8").splitlines()]
    assert len(samples) == 40 and all(s["finish"] == "length" for s in samples)
    dropped = [s["dropped_bytes"] for s in samples]
    assert any(dropped) and all(0 <= d <= 3 for d in dropped)
    # The plain text is the same samples, each written whole.
    assert all(s["text"] in plain_text for s in samples)


def test_ascii_text_larger_than_a_tiny_vocabulary():
    """The other counting path (ASCII): 99 characters, room for 42."""
    import string

    chars = string.printable.replace("\n", "")
    lines = [chars[i:] + chars[:i] for i in range(100)]
    tokenizer = train_tokenizer(lines, TokenizerConfig(kind="unigram", vocab_size=300))
    assert tokenizer.coverage.pieces < tokenizer.coverage.sample
    text = "\n".join(lines) + "\n\t▁"
    assert tokenizer.decode(tokenizer.encode_array(text)) == text
