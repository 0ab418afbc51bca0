"""rnngen.ngram in bounded memory: spilled builds equal in-memory ones, scratch files go away,
budgets are checked, models are memory-mapped, old caches are rebuilt."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnngen.errors import RnngenError
from rnngen.ngram import KneserNey, budget, external
from rnngen.ngram.external import SCRATCH_PREFIX, Plan
from rnngen.ngram.kenlm import fit_sentences
from rnngen.ngram.keys import Codec, search, sort_rows

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IN_MEMORY = Plan.for_budget(1 << 30)


def tables(model: KneserNey) -> list[np.ndarray]:
    out = [model._unigram.logprob, model._unigram.logbackoff]
    for level in model._levels:
        out += [level.keys, level.logprob, level.logbackoff]
    return out


def assert_identical(a: KneserNey, b: KneserNey) -> None:
    """The same model bit for bit: every table, the counts and the discounts."""
    assert a.stats.ngram_counts == b.stats.ngram_counts
    assert a.stats.discounts == b.stats.discounts
    assert a.stats.fallback_orders == b.stats.fallback_orders
    assert a.stats.train_tokens == b.stats.train_tokens
    for x, y in zip(tables(a), tables(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


tiny_plans = st.builds(
    Plan,
    budget=st.just(0),
    chunk=st.integers(1, 12),
    block=st.integers(1, 9),
    table=st.integers(1, 8),
    store=st.sampled_from([0, 64, 400, 1 << 20]),
    fan_in=st.integers(2, 4),
)
streams = st.tuples(
    st.sampled_from([1, 2, 3, 7, 40, 5000, 70_000]),  # 5000 and 70000: keys of several words
    st.lists(st.integers(0, 10**6), max_size=90),
    st.integers(1, 6),
)


@HYPOTHESIS
@given(streams, tiny_plans)
def test_spilled_builds_equal_in_memory_ones(tmp_path_factory, case, plan):
    vocab_size, raw, order = case
    rng = np.random.default_rng(len(raw))
    ids = np.array([r % vocab_size for r in raw], dtype=np.int64)
    if ids.size > 20:  # repeats, so that counts above 1 and shared contexts occur
        ids[ids.size // 2 :] = ids[: ids.size - ids.size // 2][
            rng.permutation(ids.size - ids.size // 2)
        ]
    scratch = tmp_path_factory.mktemp("scratch")
    expected = KneserNey.fit(ids, order, vocab_size, memory=IN_MEMORY)
    spilled = KneserNey.fit(ids, order, vocab_size, memory=plan, scratch_dir=scratch)
    assert_identical(spilled, expected)
    assert list(scratch.iterdir()) == []  # the scratch directory went with the build


@HYPOTHESIS
@given(
    st.lists(st.lists(st.sampled_from("abcdefg"), max_size=6).map(" ".join), max_size=12),
    st.integers(1, 6),
    tiny_plans,
)
def test_spilled_sentence_builds_equal_in_memory_ones(lines, order, plan):
    lines = [line + "\n" for line in lines]
    expected, words = fit_sentences(lines, order, memory=IN_MEMORY)
    spilled, spilled_words = fit_sentences(lines, order, memory=plan)
    assert words == spilled_words
    assert_identical(spilled, expected)


def test_a_spilled_build_is_memory_mapped_and_scores_the_same(tmp_path):
    rng = np.random.default_rng(3)
    ids = (rng.zipf(1.4, 5000) % 300).astype(np.uint16)
    plan = Plan(budget=0, chunk=700, block=300, table=500, store=0, fan_in=3)
    spilled = KneserNey.fit(ids, 5, 300, memory=plan, scratch_dir=tmp_path)
    expected = KneserNey.fit(ids, 5, 300)
    assert_identical(spilled, expected)
    assert not spilled._levels[-1].keys.flags.writeable  # mapped from the (unlinked) file
    assert list(tmp_path.iterdir()) == []
    np.testing.assert_array_equal(spilled.logprobs(ids[:400]), expected.logprobs(ids[:400]))


def test_memory_mapped_training_ids(tmp_path):
    ids = (np.random.default_rng(4).zipf(1.3, 20_000) % 500).astype(np.uint16)
    path = tmp_path / "ids.bin"
    ids.tofile(path)
    mapped = np.memmap(path, dtype=np.uint16, mode="r")
    assert_identical(KneserNey.fit(mapped, 4, 500), KneserNey.fit(ids, 4, 500))


# --- keys ----------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([2, 3, 1025, 8193, 70_000, 2**20]),
    st.integers(1, 9),
    st.lists(st.lists(st.integers(0, 2**20), min_size=9, max_size=9), min_size=1, max_size=40),
)
def test_keys_sort_as_tuples(radix, order, rows):
    codec = Codec(radix, order)
    tokens = np.array([[t % radix for t in row[:order]] for row in rows], dtype=np.uint64)
    keys = codec.pack(tokens)
    np.testing.assert_array_equal(codec.tokens(keys), tokens)
    ordered = codec.tokens(sort_rows(keys))
    assert [tuple(r) for r in ordered.tolist()] == sorted(tuple(r) for r in tokens.tolist())
    if order > 1:
        lower = Codec(radix, order - 1)
        np.testing.assert_array_equal(lower.tokens(codec.prefix(keys, lower)), tokens[:, :-1])
        np.testing.assert_array_equal(lower.tokens(codec.suffix(keys, lower)), tokens[:, 1:])
        prefix, last = codec.split(keys, lower)
        np.testing.assert_array_equal(last, tokens[:, -1])
    table = sort_rows(keys)
    distinct = table[np.unique(codec.tokens(table), axis=0, return_index=True)[1]]
    found = search(distinct, keys)
    np.testing.assert_array_equal(distinct[found], keys)


# --- budgets ---------------------------------------------------------------------------------


def test_a_budget_too_small_is_one_line_naming_the_minimum():
    least = budget.minimum_memory(1000)
    with pytest.raises(RnngenError, match="at least 16.1 MiB") as caught:
        KneserNey.fit(np.arange(10) % 7, 3, 1000, memory=least - 1)
    assert "\n" not in str(caught.value)
    KneserNey.fit(np.arange(10) % 7, 3, 1000, memory=least)


@pytest.mark.parametrize(
    "text, expected",
    [("1G", 1 << 30), ("512M", 512 << 20), ("1.5g", 3 << 29), ("4GB", 4 << 30), ("1000", 1000)],
)
def test_sizes_parse(text, expected):
    assert budget.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "1X", "-1G", "0%", "150%"])
def test_bad_sizes_are_user_errors(text):
    with pytest.raises(RnngenError):
        budget.parse_memory(text)


def test_the_default_budget_says_how_it_was_chosen():
    size, why = budget.default_memory()
    assert size >= 64 << 20 and "of" in why
    assert budget.parse_memory("10%") > 0


# --- scratch files ---------------------------------------------------------------------------


SPILL_EVERYTHING = Plan(budget=0, chunk=50, block=40, table=30, store=0, fan_in=2)


def test_scratch_is_removed_after_a_failure(tmp_path, monkeypatch):
    ids = np.random.default_rng(5).integers(0, 30, 2000)
    original = external.Column.append
    seen = []

    def failing(self, rows):
        original(self, rows)
        if self.on_disk:
            seen.append(self.scratch.path)
            if len(seen) > 20:
                raise RuntimeError("injected")

    monkeypatch.setattr(external.Column, "append", failing)
    with pytest.raises(RuntimeError, match="injected"):
        KneserNey.fit(ids, 4, 30, memory=SPILL_EVERYTHING, scratch_dir=tmp_path)
    assert seen and seen[0].parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    def full(handle, rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(external, "_write_to", full)
    with pytest.raises(RnngenError, match="no space left") as caught:
        KneserNey.fit(np.arange(500) % 9, 3, 9, memory=SPILL_EVERYTHING, scratch_dir=tmp_path)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_scratch_of_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f"{SCRATCH_PREFIX}{dead.stdout.strip()}.0123abcd"
    stale.mkdir()
    (stale / "00001-count.bin").write_bytes(b"x")
    KneserNey.fit(np.arange(500) % 9, 3, 9, memory=SPILL_EVERYTHING, scratch_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- the cache ---------------------------------------------------------------------------------


def test_an_old_cache_format_is_rebuilt(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from rnngen.scoring.trained_on import cached_ngram, ngram_key

    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path))
    ids = np.random.default_rng(6).integers(0, 5, 300)
    path = tmp_path / "ngram" / f"{ngram_key(ids, 3, 5, 'sha')}.safetensors"
    path.parent.mkdir()
    model = KneserNey.fit(ids, 3, 5)
    old = {
        "unigram_logprob": model._unigram.logprob,
        "unigram_logbackoff": model._unigram.logbackoff,
    }
    for k, level in enumerate(model._levels, start=2):
        old |= {
            f"keys_{k}": level.keys,
            f"logprob_{k}": level.logprob,
            f"logbackoff_{k}": level.logbackoff,
        }
    save_file(old, str(path), metadata={"format": "rnngen-ngram/1", "stats": "{}"})
    with pytest.raises(RnngenError, match="older format"):
        KneserNey.load(path)
    rebuilt, cached = cached_ngram(ids, 3, 5, "sha")
    assert not cached
    assert_identical(rebuilt, model)
    again, cached = cached_ngram(ids, 3, 5, "sha")
    assert cached and not again._levels[0].keys.flags.writeable  # memory-mapped
    assert_identical(again, model)


def test_saved_models_open_in_safetensors(tmp_path):
    from safetensors.numpy import load_file

    model = KneserNey.fit(np.arange(200) % 11, 4, 11)
    model.save(tmp_path / "m.safetensors")
    loaded = load_file(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(loaded["keys_3"], model._levels[1].keys)
    assert os.path.getsize(tmp_path / "m.safetensors") % 8 == 0


# --- the command line ------------------------------------------------------------------------


def test_ngram_memory_on_the_command_line(tmp_path, tiny_corpus):
    import json

    from typer.testing import CliRunner

    from rnngen.cli import app

    runner = CliRunner()
    base = ["ngram", str(tiny_corpus), "--test", str(tiny_corpus), "--order", "3", "--json"]
    small = runner.invoke(app, [*base, "--ngram-memory", "1M"])
    assert small.exit_code == 1
    assert small.stderr.count("\n") == 1 and "at least 16.0 MiB" in small.stderr
    default = json.loads(runner.invoke(app, base).stdout)
    given = runner.invoke(app, [*base, "--ngram-memory", "64M"])
    assert given.exit_code == 0, given.output
    report = json.loads(given.stdout)
    assert report["memory_budget"] == 64 << 20 and report["spilled_bytes"] == 0
    assert report["ppl_including_oov"] == default["ppl_including_oov"]
    assert "n-gram memory 64.0 MiB (--ngram-memory)" in given.stderr
    for command in (["eval"], ["score", "--ngram"], ["sample", "--ngram"]):
        bad = runner.invoke(app, [*command, str(tiny_corpus), "--ngram-memory", "lots"])
        assert bad.exit_code == 1 and "not a size" in bad.stderr, command
