from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MULTILINGUAL, TINYSHAKESPEARE, requires_shared, tiny_text
from rnngen.config import TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError

KINDS = {"char": 1, "bpe": 700, "unigram": 700, "word": 300}


@pytest.fixture(scope="module")
def tokenizers():
    lines = (tiny_text(300) + MULTILINGUAL).split("\n")
    return {
        k: train_tokenizer(lines, TokenizerConfig(kind=k, vocab_size=v)) for k, v in KINDS.items()
    }


# Any text at all: unseen scripts, control characters, surrogate-free code points.
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)


@pytest.mark.parametrize("kind", list(KINDS))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=any_text)
def test_round_trip_any_text(tokenizers, kind, text):
    tokenizer = tokenizers[kind]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(tokenizer.encode_array(text, piece_chars=7)) == text


@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_multilingual(tokenizers, kind):
    tokenizer = tokenizers[kind]
    assert tokenizer.decode(tokenizer.encode_array(MULTILINGUAL)) == MULTILINGUAL


@pytest.mark.parametrize("kind", ["char", "bpe", "word"])
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.text(max_size=30).filter(lambda s: "\n" not in s), max_size=12))
def test_chunked_encoding_equals_whole(tokenizers, kind, lines):
    tokenizer, text = tokenizers[kind], "\n".join(lines)
    assert list(tokenizer.encode_array(text, piece_chars=5)) == tokenizer.encode(text)


@pytest.mark.parametrize("kind", list(KINDS))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=any_text)
def test_incremental_decoding_matches(tokenizers, kind, text):
    tokenizer = tokenizers[kind]
    decoder = tokenizer.decoder()
    pieces = [decoder.feed(i) for i in tokenizer.encode(text)]
    assert "".join(pieces) == text and decoder.flush() == 0
    assert all("\ufffd" not in p for p in pieces) or "\ufffd" in text


def test_newline_is_one_token(tokenizers):
    for tokenizer in tokenizers.values():
        assert tokenizer.encode("\n") == [tokenizer.newline_id]


def test_vocab_too_small_says_what_works():
    """Below 256 byte pieces, <unk>, "\\n", the space and one character nothing fits (a
    vocabulary smaller than the alphabet is fine above that: tests/test_large_alphabet.py)."""
    with pytest.raises(RnngenError, match=r"needs at least 260"):
        train_tokenizer(["hello world"] * 10, TokenizerConfig(kind="bpe", vocab_size=259))


def test_vocab_too_large_says_what_works():
    with pytest.raises(RnngenError, match=r"use at most \d+"):
        train_tokenizer(tiny_text(50).split("\n"), TokenizerConfig(kind="word", vocab_size=5000))


def test_unknown_kind():
    with pytest.raises(RnngenError, match="unknown tokenizer kind"):
        TokenizerConfig(kind="bytes")


@requires_shared
@pytest.mark.parametrize(
    "kind,vocab", [("char", 1), ("bpe", 1024), ("unigram", 1024), ("word", 8000)]
)
def test_tinyshakespeare_round_trips_exactly(kind, vocab):
    text = (TINYSHAKESPEARE / "train.txt").read_text() + (TINYSHAKESPEARE / "valid.txt").read_text()
    tokenizer = train_tokenizer(text.split("\n"), TokenizerConfig(kind=kind, vocab_size=vocab))
    assert tokenizer.decode(tokenizer.encode_array(text)) == text
