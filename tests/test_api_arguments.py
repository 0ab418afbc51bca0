"""The Python API against careless and hostile callers: a wrong type, a value out of range,
None, NaN, an empty or unencodable string, an unknown keyword are each one RnngenError with
a one-line message naming the argument as the caller wrote it (issue 25).

Cheap: the checkpoint is the committed fixture, and every bad call fails at the door, before
any work (no training, no n-gram).
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

import rnngen
from conftest import OLD, tiny_text
from rnngen.arguments import checked
from rnngen.errors import RnngenError, UsageError


@pytest.fixture(scope="module")
def lm():
    return rnngen.load(OLD, device="cpu")


def refused(call, keyword: str) -> str:
    """`call()` raises RnngenError, one line, naming `keyword` and no CLI option."""
    with pytest.raises(RnngenError) as caught:
        result = call()
        if hasattr(result, "__next__"):
            next(result)
    message = str(caught.value)
    assert "\n" not in message and keyword in message and "--" not in message, message
    return message


def generate(lm, **kwargs):
    return lm.generate("the", **{"max_tokens": 3, "seed": 1, **kwargs})


@pytest.mark.parametrize(
    ("keyword", "values"),
    [
        ("temperature", ["1", None, True, -1, math.nan, math.inf, -0.5]),
        ("top_k", [2.5, True, "3", None, -1, math.nan]),
        ("top_p", [0, 1.5, math.nan, "0.5", None, True]),
        ("max_tokens", [2.5, True, "5", 0, -3, math.nan, math.inf]),  # None: the default
        ("max_chars", [2.5, True, "5", 0, -3]),
        ("seed", [2.5, True, "1", -1, 2**62, math.nan]),
        ("stop", [None, 5, [5], [""], "", b"x", ["\udcff"]]),
        ("precision", ["fp64", None, 5]),
    ],
)
def test_generate_names_the_keyword(lm, keyword, values):
    for value in values:
        refused(lambda value=value: generate(lm, **{keyword: value}), keyword)


def test_generate_checks_at_the_call_and_takes_what_it_should(lm):
    with pytest.raises(RnngenError, match="max_tokens must be an integer or None, not 2.5"):
        lm.generate("the", max_tokens=2.5)  # the call itself, before any piece is asked for
    for prompt in (None, 5, b"the", ["the"]):
        refused(lambda prompt=prompt: lm.generate(prompt), "prompt")
    message = refused(lambda: lm.generate("a\udcffb"), "prompt")
    assert "U+DCFF at character 1" in message
    import numpy as np

    text = "".join(lm.generate("the", max_tokens=np.int64(4), temperature=np.float32(0), seed=1))
    assert text == "".join(lm.generate("the", max_tokens=4, temperature=0.0))  # greedy
    endless = lm.generate("", max_tokens=10**30, seed=1, top_k=10**30)  # huge is fine
    assert len(list(itertools.islice(endless, 2))) == 2
    # max_tokens None is the command's default: 500 tokens, or what max_chars needs
    assert len("".join(lm.generate("", max_tokens=None, max_chars=30, seed=1))) == 30


def test_score_refuses_a_string_and_names_the_line(lm):
    message = refused(lambda: lm.score("the cat"), "lines")
    assert "give [text] for one" in message  # not each character scored as a line
    refused(lambda: lm.score(None), "lines")
    refused(lambda: lm.score(5), "lines")
    assert "lines[1]" in refused(lambda: lm.score(["ok", None]), "lines[1]")
    assert "U+DCFF" in refused(lambda: lm.score(["a\udcffb"]), "lines[0]")
    assert lm.score([]) == [] and len(lm.score(iter(["a", "b"]))) == 2
    assert lm.score(("the cat",)) == lm.score(["the cat"])


def test_a_lone_surrogate_is_an_error_at_the_tokenizer_too(lm):
    """The depth fix, which the CLI's paths (a prompt from argv) reach as well."""
    for encode in (lm.tokenizer.encode, lm.tokenizer.encode_array):
        with pytest.raises(RnngenError, match="cannot be encoded as UTF-8.*U\\+DCFF"):
            encode("ok\udcff")


def test_load_and_compare_name_their_arguments(lm, tmp_path):
    for value in (5, 2.5, True, [], b"m.safetensors", ""):
        refused(lambda value=value: rnngen.load(value, device="cpu"), "path")
        refused(lambda value=value: rnngen.compare(value), "model_or_checkpoint")
    for device in ("tpu", "", "CPU", "meta", None, 5, "\udcff"):
        refused(lambda device=device: rnngen.load(OLD, device=device), "device")
    for order in (0, 10, 2.5, True, None, "3"):
        refused(lambda order=order: rnngen.compare(lm, ngram_order=order), "ngram_order")
    for mix in (1.5, -0.1, math.nan, "x", True, [0.5]):
        refused(lambda mix=mix: rnngen.compare(lm, mix=mix), "mix")
    for dynamic in ("yes", 5, {}):
        refused(lambda dynamic=dynamic: rnngen.compare(lm, dynamic=dynamic), "dynamic")
    for name in ("data", "train"):
        refused(lambda name=name: rnngen.compare(lm, **{name: 5}), name)
        refused(lambda name=name: rnngen.compare(lm, **{name: "a\0b"}), name)
    assert "too many positional" in refused(lambda: rnngen.load(OLD, "cpu", 1), "load()")


def test_tokenize_and_train_fail_at_the_door(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(50))
    out = tmp_path / "out"
    tok = {"kind": ["xyz", None, 5], "vocab_size": [0, 2.5, True, "100"],
           "valid_frac": [1.5, math.nan, "0.1", True], "corpus": [None, 5, ""],
           "output": [5, []], "valid": [5, b"v.txt"]}  # fmt: skip
    for keyword, values in tok.items():
        for value in values:
            kwargs = {"corpus": corpus, "output": out, "kind": "char", keyword: value}
            refused(lambda kwargs=kwargs: rnngen.tokenize(**kwargs), keyword)
    model = tmp_path / "m.safetensors"
    run = {"hidden": ["big", 2.5, True, 0], "layers": [0, 1.5], "max_steps": [2.5, True, 0],
           "dropout": [2, math.nan, "x"], "lr": [0, math.inf], "seed": [2.5, "1"],
           "time_budget": ["soon", -1, math.nan, True], "resume": ["yes", 1, None],
           "force": ["no", 0], "on_event": [5, "print"], "device": ["tpu", 5],
           "output": [5], "init_from": [5], "corpus": [None, 5],
           "valid_frac": [0.9]}  # fmt: skip
    for keyword, values in run.items():
        for value in values:
            kwargs = {"corpus": corpus, "output": model, "max_steps": 1, keyword: value}
            refused(lambda kwargs=kwargs: rnngen.train(**kwargs), keyword)
    assert "did you mean 'hidden'" in refused(lambda: rnngen.train(corpus, hiden=8), "hiden")
    assert not out.exists() and not model.exists()  # refused before any work


def test_a_model_too_large_to_allocate_is_one_line(tmp_path, monkeypatch):
    """hidden=65536 is in range, but no CPU holds its 137 GB: the allocator's RuntimeError
    becomes one RnngenError (simulated here, so the test allocates nothing)."""
    from rnngen import model

    def refuse(self, config):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 68719476736 bytes.")  # fmt: skip

    monkeypatch.setattr(model.RNNLM, "__init__", refuse)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(50))
    message = refused(
        lambda: rnngen.train(corpus, output=tmp_path / "m.safetensors", hidden=65536, layers=1,
                             kind="char", max_steps=1),
        "hidden",
    )  # fmt: skip
    assert message.startswith("not enough memory on cpu for this model (1xlstm 65536")


def test_contradicting_keywords_name_both(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(50))
    shutil.copy(corpus, tmp_path / "valid.txt")
    with pytest.raises(UsageError) as caught:
        rnngen.tokenize(corpus, tmp_path / "out", valid=tmp_path / "valid.txt", valid_frac=0.1)
    assert "valid and valid_frac contradict each other" in str(caught.value)
    with pytest.raises(UsageError, match="preset sets the model's size; give layers/hidden"):
        rnngen.train(corpus, preset="awd", size="small")


def test_the_checking_layer_on_its_own():
    """`checked` reads the annotations as written and renames CLI options to keywords."""

    @checked(rename={"--temp": "temperature"})
    def call(temperature: float = 1.0, *, count: int = 1, path: str | Path | None = None,
             items: Iterable[str] = (), flag: bool = False, message: str = ""):  # fmt: skip
        if message:
            raise RnngenError(message)
        return temperature, count, path, items, flag

    assert call(2, count=3, items=["a"]) == (2.0, 3, None, ("a",), False)
    assert call(path=Path("x"))[2] == Path("x")
    import numpy as np

    assert call(np.float32(0.5), count=np.int64(2), flag=np.bool_(True)) == (0.5, 2, None, (),
                                                                                True)  # fmt: skip
    for kwargs, fragment in [
        ({"count": True}, "count must be an integer, not True"),
        ({"count": 2.5}, "count must be an integer, not 2.5"),
        ({"temperature": "hot"}, "temperature must be a number, not 'hot'"),
        ({"temperature": 10**400}, "temperature is too large"),
        ({"path": 5}, "path must be a path (str or pathlib.Path) or None, not 5"),
        ({"path": ""}, "path is empty"),
        ({"items": "abc"}, "items must be an iterable of str such as a list, not a str"),
        ({"items": [1]}, "items[0] must be a str, not 1"),
        ({"flag": 1}, "flag must be True or False, not 1"),
        ({"message": "\udcff"}, "message is not text that can be encoded as UTF-8"),
        ({"message": "--temp must be 0 or more; --count; --no-flag; '--count'"},
         "temperature must be 0 or more; count; flag=False; '--count'"),
        ({"other": 1}, "call(): got an unexpected keyword argument 'other'"),
    ]:  # fmt: skip
        with pytest.raises(RnngenError) as caught:
            call(**kwargs)
        assert fragment in str(caught.value), (kwargs, str(caught.value))
