"""The Python API: the README's examples, the CLI and the API agreeing, an old checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, tiny_text

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "old_char.safetensors"  # written by rnngen before the API existed


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("api")
    (folder / "corpus.txt").write_text(tiny_text(300))
    result = run_cli(
        "train", "corpus.txt", "--layers", "1", "--hidden", "16", "--embed", "16", "--kind",
        "char", "--max-steps", "5", "-q", "-o", "checkpoints/tiny.safetensors", cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder / "checkpoints" / "tiny.safetensors"


def test_readme_examples(checkpoint, monkeypatch):
    """The README's "Python" section, run as written (with this test's checkpoint)."""
    monkeypatch.chdir(checkpoint.parents[1])
    import rnngen

    lm = rnngen.load("checkpoints/tiny.safetensors")
    text = "".join(lm.generate("the cat", temperature=0.8, max_tokens=40, seed=1))
    assert text == "".join(lm.generate("the cat", temperature=0.8, max_tokens=40, seed=1))
    scores = lm.score(["the cat sat on the mat.", "mat the on sat cat the."])
    assert [s.tokens for s in scores] == [24, 24] and all(s.logprob < 0 for s in scores)
    report = rnngen.compare(lm, ngram_order=3)
    assert [row.name for row in report.rows] == ["lstm 1x16", "kneser-ney 3-gram", "unigram",
                                                 "lstm 1x16 + 3-gram"]  # fmt: skip
    assert 0 <= report.mixture.weight <= 1
    assert len({row.tokens for row in report.rows}) == 1 and report.oracle is None
    corpus = rnngen.tokenize("corpus.txt", "tokenized/corpus", kind="char")
    assert corpus.meta["splits"]["train"]["tokens"] > 0
    assert callable(rnngen.train)
    [neighbors] = rnngen.neighbors(lm, ["the"], k=3)  # `rnngen.export` is tested in test_export
    assert len(neighbors.neighbors) == 3 and lm.neighbors(["the"], k=3) == [neighbors]


def test_the_cli_and_the_api_give_identical_figures(checkpoint):
    import rnngen

    result = run_cli("eval", str(checkpoint), "--json", "--ngram-order", "3")
    assert result.returncode == 0, result.stderr
    report = rnngen.compare(checkpoint, ngram_order=3, device="cpu")
    assert json.loads(result.stdout) == json.loads(json.dumps(report.to_json()))
    lines = ["the cat sat.", "a dog ran to the park."]
    cli = run_cli("score", str(checkpoint), "--device", "cpu", input="\n".join(lines) + "\n")
    api = rnngen.load(checkpoint, device="cpu").score(lines)
    assert [json.loads(line) for line in cli.stdout.splitlines()] == [
        {"text": s.text, "tokens": s.tokens, "logprob": s.logprob, "ppl": s.ppl} for s in api
    ]


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_the_cli_and_the_api_sample_the_same_text(checkpoint, temperature):
    """No --precision, no option pinned: `rnngen sample` and `rnngen.load(...).sample(...)` /
    `generate(...)` choose the precision by one rule, so a seed gives the same text."""
    from typer.testing import CliRunner

    import rnngen
    from rnngen.cli import app

    args = ["sample", str(checkpoint), "--prompt", "the", "--seed", "4", "--length", "40",
            "-n", "3", "--temp", str(temperature), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cli = [json.loads(line) for line in result.stdout.splitlines()]
    lm = rnngen.load(checkpoint)
    sampling = lm.sample("the", n=3, seed=4, max_tokens=40, temperature=temperature)
    expected = "fp32" if temperature == 0 else sampling.precision
    assert sampling.precision == expected and f" {expected}\n" in result.stderr
    done = sorted((e for e in sampling if isinstance(e, rnngen.api.Done)), key=lambda e: e.index)
    assert [{"index": e.index, "prompt": "the", "text": e.text, "tokens": e.tokens,
             "seed": e.seed, "finish": e.reason, "dropped_bytes": e.dropped_bytes}
            for e in done] == cli  # fmt: skip
    text = "".join(lm.generate("the", seed=4, max_tokens=40, temperature=temperature))
    assert text == cli[0]["text"]


def test_the_api_samples_as_the_command_does(checkpoint):
    """`sample`'s options and records, and its errors naming the API's keywords."""
    import rnngen

    lm = rnngen.load(checkpoint)
    sampling = lm.sample("the", n=2, max_chars=12, stop=["\n"])  # a random seed, said
    assert 0 <= sampling.seed < 2**31 and sampling.num_samples == 2 and not sampling.greedy
    done = [e for e in sampling if isinstance(e, rnngen.api.Done)]
    assert sorted(e.seed for e in done) == [sampling.seed, sampling.seed + 1]
    assert all(len(e.text) <= 12 and e.reason in ("chars", "stop") for e in done)
    for call, keyword in [(lambda: lm.sample(temperature=-1), "temperature"),
                          (lambda: lm.sample(n=0), "n must"),
                          (lambda: lm.sample(max_chars=0), "max_chars"),
                          (lambda: lm.sample(precision="fp8"), "precision"),
                          (lambda: lm.sample(ngram=True, mix=0.5), "ngram and mix"),
                          (lambda: lm.sample(mix=2), "mix"),
                          (lambda: lm.generate(max_tokens=0), "max_tokens")]:  # fmt: skip
        with pytest.raises(rnngen.RnngenError, match=keyword):
            call()


def test_an_old_checkpoint_loads_samples_scores_and_evals(tmp_path):
    """A checkpoint written by the code before the library API (and its figures then)."""
    for name in ("old_char.safetensors", "old_char_train.txt", "old_char_heldout.txt"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    args = ["--data", "old_char_heldout.txt", "--train", "old_char_train.txt"]
    result = run_cli("eval", "old_char.safetensors", *args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # the figures of then, exactly; this code adds the RNN + n-gram mixture row beside them
    mixed = [row for row in report["rows"] if " + " in row["name"]]
    report["rows"] = [row for row in report["rows"] if row not in mixed]
    report.pop("mixture", None)
    assert report == json.loads((FIXTURES / "old_char_eval.json").read_text())
    assert len(mixed) <= 1
    result = run_cli("score", "old_char.safetensors", input="the cat sat.\nthe dog\n", cwd=tmp_path)
    assert result.stdout == (FIXTURES / "old_char_score.jsonl").read_text()
    import rnngen

    lm = rnngen.load(OLD, device="cpu")
    # The text of then: sampled in fp32 (the one precision every CPU reproduces; what a CPU
    # with bf16 units samples at --temp 1 with no --precision is its own, checked below).
    text = "".join(lm.generate(seed=1, max_tokens=60, precision="fp32"))
    assert text + "\n" == (FIXTURES / "old_char_sample.txt").read_text()
    result = run_cli("sample", "old_char.safetensors", "--seed", "1", "--length", "60",
                     cwd=tmp_path)  # fmt: skip
    assert result.stdout == "".join(lm.generate(seed=1, max_tokens=60)) + "\n"
    assert lm.provenance is not None and lm.provenance.heldout_split == "test"
    assert lm.score(["the cat sat."])[0].tokens == 13


def test_provenance_round_trips_exactly_and_fails_clearly():
    from safetensors import safe_open

    from rnngen.corpus.provenance import Provenance, checkpoint_provenance
    from rnngen.errors import RnngenError

    with safe_open(str(OLD), framework="numpy") as f:
        meta = f.metadata()
    provenance = checkpoint_provenance(meta)
    assert json.dumps(provenance.to_json()) == meta["provenance"]
    raw = json.loads(meta["provenance"])
    source = {"corpus": raw["corpus"]}
    assert Provenance.from_training(source, raw["tokenized_meta"]).to_json() == raw
    for bad in (None, {}, {"corpus": "x"}, {**raw, "version": 7}):
        with pytest.raises(RnngenError, match="--data FILE"):
            Provenance.from_json(bad)
    assert checkpoint_provenance({}, required=False) is None
