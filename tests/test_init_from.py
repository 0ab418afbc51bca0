"""Fine-tuning (`rnngen train NEW --init-from BASE`): the run starts from the base's weights,
tokenizes with its tokenizer, keeps its architecture, records it, and refuses what
contradicts it with one clear line."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from conftest import run_cli, tiny_text
from rnngen.checkpoint import load_model, read_meta
from rnngen.corpus.provenance import checkpoint_provenance
from rnngen.corpus.textio import file_sha256
from rnngen.errors import RnngenError
from rnngen.training.events import Evaluation

FAST = dict(batch_size=4, seq_len=16, device="cpu", precision="fp32", seed=3)
BASE = dict(kind="bpe", vocab_size=300, hidden=16, dropout=0.0, max_steps=40, warmup=5,
            lr=3e-2, **FAST)  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A base model trained once for the module, on its own corpus: (checkpoint, corpus)."""
    from rnngen.training.run import train

    folder = tmp_path_factory.mktemp("base")
    corpus = folder / "base.txt"
    corpus.write_text(tiny_text(300, seed=0))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNGEN_CACHE", str(folder / "cache"))
        train(corpus, output=folder / "base.safetensors", **BASE)
    return folder / "base.safetensors", corpus


@pytest.fixture
def new_corpus(tmp_path):
    path = tmp_path / "new.txt"
    path.write_text(tiny_text(300, seed=1))
    return path


def fine_tune(corpus, base_path, output, **options):
    from rnngen.training.run import train

    options = {**FAST, "max_steps": 2, **options}
    return train(corpus, output=output, init_from=base_path, **options)


def test_the_model_starts_as_the_base_with_the_new_runs_options(base, new_corpus):
    """Through the library's phases: the built model holds the base's weights, with the base's
    architecture and this run's dropout."""
    from rnngen.training import run as training
    from rnngen.training.data import prepare_data
    from rnngen.training.options import configs

    base_path, _ = base
    config, options = configs(dropout=0.25, **FAST)
    opened = training.open_base(base_path, {"dropout": 0.25})
    data = prepare_data(str(new_corpus), tokenizer=opened.tokenizer)
    place = training.connect(config)
    plan = training.plan_model(data, options, config, place, None, opened)
    model = training.build_model(data, plan, place).model
    base_model, base_tokenizer, _ = load_model(base_path)
    assert plan.sizing is None and plan.config.hidden_size == 16 and plan.config.dropout == 0.25
    assert data.tokenizer.sha256 == base_tokenizer.sha256
    for name, tensor in base_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_fine_tuning_continues_from_the_base(base, tmp_path):
    """On the base's own text, with a negligible learning rate, the first evaluation scores
    what the base scored; an untrained model of the same shape scores far worse."""
    from rnngen.training.run import train

    base_path, base_corpus = base
    base_loss = json.loads(read_meta(base_path)["metrics"])["valid_loss"]
    still = dict(lr=1e-9, max_steps=1, eval_every=1)
    events = []
    fine_tune(base_corpus, base_path, tmp_path / "ft.safetensors", on_event=events.append, **still)
    first = next(e for e in events if isinstance(e, Evaluation))
    assert first.valid_loss == pytest.approx(base_loss, abs=1e-3)
    scratch = train(base_corpus, output=tmp_path / "scratch.safetensors", kind="bpe",
                    vocab_size=300, hidden=16, **{**FAST, **still})  # fmt: skip
    assert scratch.best_valid_loss > base_loss + 0.5
    assert scratch.best_valid_loss == pytest.approx(math.log(300), abs=0.2)


def test_the_checkpoint_records_the_base(base, new_corpus, tmp_path):
    base_path, base_corpus = base
    out = tmp_path / "ft.safetensors"
    result = fine_tune(new_corpus, base_path, out, dropout=0.2)
    assert result.sizing is None  # nothing measured: the base sets the size
    model, tokenizer, meta = load_model(out)
    _, base_tokenizer, base_meta = load_model(base_path)
    assert tokenizer.sha256 == base_tokenizer.sha256
    assert meta["tokenizer_sha256"] == base_meta["tokenizer_sha256"]
    assert model.config.hidden_size == 16 and model.config.dropout == 0.2
    assert json.loads(meta["init_from"]) == {
        "path": str(base_path.resolve()),
        "sha256": file_sha256(base_path),
        "corpus": str(base_corpus.resolve()),
    }
    provenance = json.loads(meta["provenance"])
    assert "version" not in provenance and provenance["corpus"] == str(new_corpus.resolve())
    assert checkpoint_provenance(meta).meta.tokenizer["config"] == {
        "given_sha256": tokenizer.sha256
    }
    assert "init_from" not in base_meta  # a run without a base records none
    # a fine-tune of the fine-tune records the whole lineage, and info shows it
    again = tmp_path / "again.safetensors"
    fine_tune(new_corpus, out, again)
    lineage = json.loads(read_meta(again)["init_from"])
    assert lineage["path"] == str(out.resolve()) and lineage["init_from"]["sha256"] == (
        file_sha256(base_path)
    )
    from rnngen.cli import app

    info = CliRunner().invoke(app, ["info", str(again)])
    assert info.exit_code == 0 and info.stdout.count("initialized from") == 2


def test_resuming_a_fine_tune_keeps_its_base(base, new_corpus, tmp_path):
    from rnngen.training.run import train

    """...and needs it no more: the tokenizer comes from the run's own checkpoint."""
    base_path, _ = base
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(base_path.read_bytes())
    out = tmp_path / "ft.safetensors"
    fine_tune(new_corpus, copy, out)
    record = json.loads(read_meta(out)["init_from"])
    copy.unlink()
    more = train(new_corpus, output=out, resume=True, **{**FAST, "max_steps": 4})
    assert more.steps == 4 and json.loads(read_meta(out)["init_from"]) == record


def test_a_tokenized_directory_must_share_the_bases_tokenizer(base, new_corpus, tmp_path):
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.splits import resolve_spans
    from rnngen.corpus.store import tokenize_corpus

    base_path, _ = base
    _, base_tokenizer, _ = load_model(base_path)
    spans = resolve_spans(new_corpus, None, None, None, None)
    same = tokenize_corpus(spans, tmp_path / "same", TokenizerConfig(), tokenizer=base_tokenizer)
    assert same.tokenizer.sha256 == base_tokenizer.sha256
    assert fine_tune(tmp_path / "same", base_path, tmp_path / "a.safetensors").steps == 2
    tokenize_corpus(spans, tmp_path / "other", TokenizerConfig(kind="char"))
    with pytest.raises(RnngenError, match="tokenized with another tokenizer"):
        fine_tune(tmp_path / "other", base_path, tmp_path / "b.safetensors")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"kind": "char"}, "the base tokenizes with bpe 300 pieces, not kind char"),
        ({"vocab_size": 512}, "not vocab_size 512"),
        ({"hidden": 32, "cell": "gru"}, "hidden 32, cell gru would change it"),
        ({"size": "small"}, "size small"),
        ({"tie": False}, "tie=False"),
        ({"resume": True}, "init_from starts a new run"),
    ],
)
def test_contradictions_are_refused_before_any_work(base, new_corpus, tmp_path, options,
                                                    fragment):  # fmt: skip
    """Through the Python API, so the message names the keywords (the CLI's test below
    names the options)."""
    base_path, _ = base
    out = tmp_path / "ft.safetensors"
    with pytest.raises(RnngenError, match=fragment):
        fine_tune(new_corpus, base_path, out, **options)
    assert not out.exists()


def test_options_that_agree_with_the_base_are_fine(base, new_corpus, tmp_path):
    base_path, _ = base
    agreeing = dict(kind="bpe", vocab_size=300, hidden=16, layers=1, cell="lstm", tie=True)
    assert fine_tune(new_corpus, base_path, tmp_path / "ft.safetensors", **agreeing).steps == 2


def cli(*args):
    from rnngen.cli import app

    return CliRunner().invoke(app, ["train", *map(str, args), "--max-steps", "2", "-q",
                                    "--device", "cpu"])  # fmt: skip


def assert_one_error_line(stdout: str, stderr: str, fragment: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], stderr
    assert stdout == "" and "Traceback" not in stderr


def test_cli_refuses_a_mismatched_kind_in_one_line(base, new_corpus, tmp_path):
    base_path, _ = base
    out = tmp_path / "ft.safetensors"
    result = cli(new_corpus, "-o", out, "--init-from", base_path, "--kind", "unigram")
    assert result.exit_code == 1
    assert_one_error_line(result.stdout, result.stderr, "drop --kind/--vocab-size")
    for flags, fragment, code in [
        (["--resume"], "give one of them", 2),  # a contradiction: a usage error
        (["--cell", "gru"], "--cell gru", 1),
        (["--layers", "2"], "--layers 2", 1),
    ]:
        result = cli(new_corpus, "-o", out, "--init-from", base_path, *flags)
        assert result.exit_code == code
        assert_one_error_line(result.stdout, result.stderr, fragment)
    ok = cli(new_corpus, "-o", out, "--init-from", base_path, "--dropout", "0.3", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["steps"] == 2


def test_options_left_at_their_defaults_are_not_given(new_corpus, tmp_path, monkeypatch):
    """--kind defaults to bpe and --cell to lstm: a char or GRU base must still fine-tune
    when they are not typed, and be refused when they are."""
    import rnngen.training.run

    seen = []

    def capture(init_from, given, **_):
        seen.append(given)
        raise SystemExit(0)

    monkeypatch.setattr(rnngen.training.run, "open_base", capture)
    cli(new_corpus, "--init-from", tmp_path / "base.safetensors", "--dropout", "0.3")
    cli(new_corpus, "--init-from", tmp_path / "base.safetensors", "--kind", "bpe", "--tie")
    assert not {"kind", "vocab_size", "cell", "tie", "residual", "size"} & set(seen[0])
    assert seen[0]["dropout"] == 0.3
    assert seen[1]["kind"] == "bpe" and seen[1]["tie"] is True


def test_subprocess_refuses_a_mismatched_vocab_size(base, new_corpus, tmp_path):
    base_path, _ = base
    args = ["train", str(new_corpus), "-o", str(tmp_path / "ft"), "--init-from", str(base_path)]
    result = run_cli(*args, "--vocab-size", "1024")
    assert result.returncode == 1
    assert_one_error_line(result.stdout, result.stderr, "bpe 300 pieces, not --vocab-size 1024")


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: d / "missing.safetensors", "does not exist"),
        (lambda d: write(d / "text.safetensors", b"not a checkpoint"), "not a readable"),
        (lambda d: d, "is a directory"),
    ],
)
def test_a_missing_or_foreign_base_is_one_line(new_corpus, tmp_path, make, fragment):
    result = cli(new_corpus, "-o", tmp_path / "ft", "--init-from", make(tmp_path))
    assert result.exit_code == 1
    assert_one_error_line(result.stdout, result.stderr, fragment)
    assert result.stderr.startswith("error: --init-from: ")


def test_a_damaged_base_is_one_line(base, new_corpus, tmp_path):
    base_path, _ = base
    damaged = tmp_path / "damaged.safetensors"
    data = base_path.read_bytes()
    write(damaged, data[: len(data) - 100])
    result = cli(new_corpus, "-o", tmp_path / "ft", "--init-from", damaged)
    assert result.exit_code == 1
    assert_one_error_line(result.stdout, result.stderr, "--init-from")


def test_the_base_is_replaced_only_with_force(base, new_corpus, tmp_path):
    base_path, _ = base
    own = tmp_path / "own.safetensors"
    own.write_bytes(base_path.read_bytes())
    before = file_sha256(own)
    result = cli(new_corpus, "-o", own, "--init-from", own)
    assert result.exit_code == 1
    assert_one_error_line(result.stdout, result.stderr, "is the base checkpoint of --init-from")
    assert file_sha256(own) == before
    result = cli(new_corpus, "-o", own, "--init-from", own, "--force")
    assert result.exit_code == 0, result.stderr
    assert json.loads(read_meta(own)["init_from"])["sha256"] == before != file_sha256(own)


def write(path, data: bytes):
    path.write_bytes(data)
    return path
