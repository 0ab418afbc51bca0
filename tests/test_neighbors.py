"""Nearest pieces in the input embedding: a planted structure is found, several pieces are
averaged (and say so), byte-only words are an error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_text
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.word_vectors import nearest, piece_label, piece_labels, spelling


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(tiny_text(300).split("\n"), TokenizerConfig(kind="word", vocab_size=300))


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, embed_size=16))


def test_tokens_with_identical_rows_are_each_others_nearest(tokenizer, model):
    cat, dog = spelling(tokenizer, "cat"), spelling(tokenizer, "dog")
    assert len(cat) == len(dog) == 1
    weight = model.embedding.weight.detach().clone()
    weight[dog[0]] = weight[cat[0]]
    weight[dog[0]] *= 3  # cosine ignores the length
    for word, other in (("cat", dog[0]), ("dog", cat[0])):
        [result] = nearest(weight, tokenizer, [word], k=5)
        assert result.neighbors[0].id == other
        assert result.neighbors[0].similarity == pytest.approx(1.0)
        assert not result.averaged and len(result.neighbors) == 5
        sims = [n.similarity for n in result.neighbors]
        assert sims == sorted(sims, reverse=True)


def test_a_word_is_looked_up_after_a_space(tokenizer):
    [piece] = spelling(tokenizer, "cat")
    assert tokenizer.sp.id_to_piece(piece) == "\u2581cat"


def test_a_word_in_several_pieces_is_their_mean(model):
    bpe = train_tokenizer(tiny_text(300).split("\n"), TokenizerConfig(kind="bpe", vocab_size=300))
    weight = torch.randn(bpe.vocab_size, 8, generator=torch.Generator().manual_seed(0))
    ids = spelling(bpe, "catdog")  # never one piece
    assert len(ids) > 1
    [result] = nearest(weight, bpe, ["catdog"], k=3)
    assert result.averaged and result.pieces == [piece_label(bpe, i) for i in ids]
    mean = weight[ids].mean(0)
    unit = weight / weight.norm(dim=1, keepdim=True)
    expected = (unit @ (mean / mean.norm())).double()
    for neighbor in result.neighbors:
        assert neighbor.id not in ids
        assert neighbor.similarity == pytest.approx(float(expected[neighbor.id]), abs=1e-6)


def test_byte_pieces_and_the_words_own_pieces_are_no_neighbours(tokenizer, model):
    [result] = nearest(model.embedding.weight, tokenizer, ["the"], k=tokenizer.vocab_size)
    ids = {n.id for n in result.neighbors}
    assert not any(tokenizer.sp.is_byte(i) or tokenizer.sp.is_unknown(i) for i in ids)
    assert spelling(tokenizer, "the")[0] not in ids


def test_bad_words(tokenizer, model):
    with pytest.raises(RnngenError, match="spelled only in byte pieces"):
        nearest(model.embedding.weight, tokenizer, ["日本"])
    with pytest.raises(RnngenError, match="not empty or blank"):
        nearest(model.embedding.weight, tokenizer, [" "])
    with pytest.raises(RnngenError, match="-k must be at least 1"):
        nearest(model.embedding.weight, tokenizer, ["cat"], k=0)


def test_labels_fit_on_one_line(tokenizer):
    labels = piece_labels(tokenizer)
    assert len(labels) == tokenizer.vocab_size
    assert labels[tokenizer.newline_id] == "\\n"
    assert all("\n" not in label and "\t" not in label for label in labels)
    assert np.unique(labels).size == len(labels)


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tokenizer, model, tmp_path):
    from rnngen.checkpoint import save_model

    path = tmp_path / "words.safetensors"
    with torch.no_grad():
        cat, dog = spelling(tokenizer, "cat")[0], spelling(tokenizer, "dog")[0]
        model.embedding.weight[dog] = model.embedding.weight[cat]
    save_model(path, model, tokenizer, {})
    return path


def invoke(*args):
    from typer.testing import CliRunner

    from rnngen.cli import app

    result = CliRunner().invoke(app, ["neighbors", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_command_as_json_and_as_a_table(checkpoint):
    import json

    result = invoke(str(checkpoint), "cat", "the cat", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    cat, catdog = map(json.loads, result.stdout.splitlines())
    assert cat["neighbors"][0]["piece"] == "\u2581dog" and len(cat["neighbors"]) == 3
    assert cat["averaged"] is False and catdog["averaged"] is True
    table = invoke(str(checkpoint), "cat", "the cat")
    assert table.exit_code == 0 and "\u2581dog" in table.stdout
    assert "the cat: the mean of its 2 pieces \u2581the \u2581cat" in table.stdout
    assert "cat: piece \u2581cat" in table.stdout


def test_the_python_api_is_the_command(checkpoint):
    import rnngen

    [result] = rnngen.neighbors(checkpoint, ["dog"], k=1)
    assert result.neighbors[0].piece == "\u2581cat"
    assert rnngen.load(checkpoint, "cpu").neighbors(["dog"], k=1) == [result]


@pytest.mark.parametrize("args, fragment", [
    (["日本"], "spelled only in byte pieces"),
    (["cat", "-k", "0"], "-k must be at least 1"),
])  # fmt: skip
def test_bad_words_are_one_line(checkpoint, args, fragment):
    result = invoke(str(checkpoint), *args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert fragment in result.stderr
