"""Sampling: the token choice, reproducibility, stopping rules, then the command (and the
command and the Python API agreeing)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from typer.testing import CliRunner

from conftest import run_cli, tiny_text
from rnngen.checkpoint import load_model, save_model
from rnngen.cli import app
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.sampling.batch import choose_tokens
from rnngen.sampling.generate import Done, Piece, SampleConfig, filter_logits
from rnngen.sampling.sampler import generate

UNSEEN = "日本語 👩‍👩‍👧 ▁ é\n"  # nothing of it is in tiny_text: byte fallback


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(tiny_text(200).split("\n"), TokenizerConfig(kind="bpe"))


def tiny_model(vocab: int, seed: int = 0, **kw) -> RNNLM:
    torch.manual_seed(seed)
    options = dict(hidden_size=32, embed_size=32, layers=2, dropout=0.0, embed_dropout=0.0)
    return RNNLM(ModelConfig(vocab_size=vocab, **{**options, **kw})).eval()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer.vocab_size)


@pytest.fixture(scope="module")
def checkpoint(tokenizer, model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    save_model(path, model, tokenizer, {"metrics": {"step": 1}})
    return path


def texts(model, tokenizer, prompt="", precision="fp32", **options) -> list[str]:
    """The generated text of every sample, checking that the pieces add up to it. `model` an
    RNNLM, or a KneserNey sampled alone."""
    config = SampleConfig(**{"max_tokens": 40, **options})
    pieces, done = [""] * config.num_samples, {}
    rnn, ngram = (model, None) if isinstance(model, RNNLM) else (None, model)
    for event in generate(rnn, tokenizer, prompt, config, precision, ngram=ngram):
        if isinstance(event, Piece):
            assert event.index not in done
            pieces[event.index] += event.text
        else:
            done[event.index] = event
    assert [done[i].text for i in range(config.num_samples)] == pieces
    return pieces


# -- choosing tokens ----------------------------------------------------------------------


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.25, 0.125, 0.0625, 0.0625], [0.0625, 0.0625, 0.125, 0.25, 0.5]])
    logits = probs.log()
    kept = lambda p: filter_logits(logits, top_p=p).isfinite()  # noqa: E731
    assert kept(0.5).tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
    assert kept(0.6).tolist() == [[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]]
    assert kept(0.75).tolist() == [[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]]
    assert kept(0.1).tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]  # the likeliest always
    assert kept(1.0).all()
    # after top-k 2 the mass is renormalized: 0.5/0.75 = 0.67 >= 0.6, so one token is enough
    assert filter_logits(logits, top_k=2, top_p=0.6).isfinite().sum(-1).tolist() == [1, 1]
    kept_logits = filter_logits(logits, top_p=0.6)
    assert torch.equal(kept_logits[kept(0.6)], logits[kept(0.6)])  # survivors unchanged


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=30), st.floats(0.01, 1.0))
def test_top_p_property(values, p):
    logits = torch.tensor([values], dtype=torch.float64)
    probs = logits.softmax(-1)[0]
    kept = filter_logits(logits, top_p=p).isfinite()[0]
    mass = probs[kept].sum().item()
    assert mass >= p - 1e-9  # reaches p
    assert mass - probs[kept].min().item() < p + 1e-9  # minus its least likely token it doesn't
    assert probs[kept].min() >= probs[~kept].max() if (~kept).any() else True


def test_top_k_keeps_exactly_k():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    assert filter_logits(logits, top_k=2).isfinite().tolist() == [[0, 1, 0, 1, 0]]
    assert filter_logits(logits, top_k=9).isfinite().all()  # k beyond V keeps all


def test_chooser_draws_from_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    rows = [SimpleNamespace(config=SampleConfig(seed=3 + i),
                            generator=torch.Generator().manual_seed(3 + i))
            for i in range(2000)]  # fmt: skip
    counts = torch.zeros(5)
    for _ in range(5):
        counts += torch.bincount(choose_tokens(probs.log().expand(2000, -1), rows), minlength=5)
    assert counts[4] == 0  # probability 0 never comes
    assert torch.allclose(counts / counts.sum(), probs, atol=0.02)


# -- generation ----------------------------------------------------------------------------


def test_same_seed_same_text_other_seeds_differ(model, tokenizer):
    first = texts(model, tokenizer, seed=7, num_samples=2)
    assert texts(model, tokenizer, seed=7, num_samples=2) == first
    assert first[0] != first[1]  # sample i uses seed + i
    assert texts(model, tokenizer, seed=8)[0] != first[0]


def test_bf16_weights_sample_reproducibly_and_leave_the_model_fp32(model, tokenizer):
    first = texts(model, tokenizer, "the", "bf16", seed=3, num_samples=3)
    assert texts(model, tokenizer, "the", "bf16", seed=3, num_samples=3) == first
    assert model.embedding.weight.dtype == torch.float32


def test_greedy_ignores_the_seed_and_top_k_1_is_greedy(model, tokenizer):
    greedy = texts(model, tokenizer, temperature=0, seed=1)
    assert texts(model, tokenizer, temperature=0, seed=2) == greedy
    assert texts(model, tokenizer, temperature=1.3, top_k=1, seed=5) == greedy
    assert SampleConfig(temperature=0, seed=4).seed_of(0) is None


def test_a_batch_equals_separate_samples(model, tokenizer):
    batch = texts(model, tokenizer, "the", seed=11, num_samples=4, top_p=0.9)
    alone = [texts(model, tokenizer, "the", seed=11 + i, top_p=0.9)[0] for i in range(4)]
    assert batch == alone


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("shape", [{}, {"residual": True, "layers": 3}, {"tie": False},
                                   {"hidden_size": 48}])  # fmt: skip
def test_step_equals_forward(cell, shape):
    """The per-token path runs the cells directly; it must be the model's own maths."""
    model = tiny_model(50, cell=cell, **shape)
    ids = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    full, _ = model(ids)  # (1, 12, V)
    logits, state = model(ids[:, :4])  # per layer (1, 1, H), or a pair of them

    def rows(t: torch.Tensor) -> torch.Tensor:  # (1, 1, H) -> 3 rows (3, H), as SampleBatch
        return t[0].expand(3, -1).contiguous()

    state = [tuple(map(rows, s)) if isinstance(s, tuple) else rows(s) for s in state]
    steps = [logits[:, -1].expand(3, -1)]
    with torch.inference_mode():
        for t in range(4, 11):
            step, state = model.step(ids[0, t].repeat(3), state)  # (3, V)
            steps.append(step)
    assert torch.allclose(torch.stack(steps, 1), full[:, 3:11], atol=1e-5)


def test_stop_strings_end_a_sample_after_the_stop(model, tokenizer):
    free = texts(model, tokenizer, seed=2, max_tokens=60)[0]
    stop = free[15:18]  # most likely straddles two tokens
    end = free.find(stop) + len(stop)
    assert texts(model, tokenizer, seed=2, max_tokens=60, stops=(stop,))[0] == free[:end]
    later = free[end : end + 2]  # the earliest of several stops wins
    assert texts(model, tokenizer, seed=2, max_tokens=60, stops=(later, stop))[0] == free[:end]


def test_length_chars_and_finish_reasons(model, tokenizer):
    config = SampleConfig(max_tokens=30, max_chars=7, num_samples=3, seed=0)
    done = [e for e in generate(model, tokenizer, "", config) if isinstance(e, Done)]
    assert sorted(e.seed for e in done) == [0, 1, 2]
    assert sorted(e.index for e in done) == [0, 1, 2]
    assert all(len(e.text) == 7 and e.reason == "chars" for e in done)
    config = SampleConfig(max_tokens=5, seed=0)
    (done,) = [e for e in generate(model, tokenizer, "", config) if isinstance(e, Done)]
    assert done.tokens == 5 and done.reason == "length"


def test_unseen_characters_in_the_prompt(model, tokenizer):
    assert tokenizer.decode(tokenizer.encode(UNSEEN)) == UNSEEN
    assert len(texts(model, tokenizer, UNSEEN, seed=0)[0]) > 0


def test_ngram_model_samples_too(tokenizer):
    from rnngen.ngram import KneserNey

    ids = tokenizer.encode_array(tiny_text(200))
    ngram = KneserNey.fit(ids, 3, tokenizer.vocab_size)
    first = texts(ngram, tokenizer, "the", seed=1, num_samples=2)
    assert texts(ngram, tokenizer, "the", seed=1, num_samples=2) == first
    assert set(texts(ngram, tokenizer, temperature=0)[0]) <= set(tiny_text(200))


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"temperature": -1}, "--temp"),
        ({"temperature": float("nan")}, "--temp"),
        ({"top_p": 0}, "--top-p"),
        ({"top_p": 1.5}, "--top-p"),
        ({"top_k": -1}, "--top-k"),
        ({"max_tokens": 0}, "--length"),
        ({"num_samples": 0}, "--num-samples"),
        ({"stops": ("",)}, "--stop"),
    ],
)
def test_bad_configs(options, fragment):
    with pytest.raises(RnngenError, match=fragment):
        SampleConfig(**options)


def test_checkpoint_from_a_gpu_run_loads_on_the_cpu(checkpoint, tokenizer):
    """Weights are saved fp32 on the CPU whatever device trained them; loading maps to cpu."""
    model, _, _ = load_model(checkpoint, "cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_on_a_gpu(checkpoint, tmp_path):
    model, tokenizer, _ = load_model(checkpoint, "cuda")
    first = texts(model, tokenizer, "the", seed=3, num_samples=4)
    assert texts(model, tokenizer, "the", seed=3, num_samples=4) == first
    assert texts(model, tokenizer, temperature=0, seed=1) == texts(
        model, tokenizer, temperature=0, seed=2
    )
    assert texts(model, tokenizer, "the", "bf16", seed=3)[0]
    gpu = tiny_model(tokenizer.vocab_size, seed=5).cuda()
    save_model(tmp_path / "gpu.safetensors", gpu, tokenizer, {})  # saved from CUDA weights
    assert load_model(tmp_path / "gpu.safetensors", "cpu")[0].embedding.weight.is_cpu
    result = invoke(str(checkpoint), "--device", "cuda", "--seed", "1", "-n", "2", "--json")
    assert result.exit_code == 0 and "on cuda fp32" in result.stderr


# -- the command ---------------------------------------------------------------------------


def invoke(*args, input=None):
    threads = torch.get_num_threads()  # the command sets it; other tests keep theirs
    try:
        result = CliRunner().invoke(app, ["sample", *args], input=input)
    finally:
        torch.set_num_threads(threads)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_plain_output_and_separators(checkpoint):
    options = [str(checkpoint), "--seed", "4", "--length", "25", "-q", "--prompt", "the"]
    lines = invoke(*options, "-n", "3", "--json").stdout.splitlines()
    samples = [json.loads(line) for line in lines]
    assert [s["index"] for s in samples] == [0, 1, 2] and [s["seed"] for s in samples] == [4, 5, 6]
    assert all(s["tokens"] == 25 and s["finish"] == "length" for s in samples)
    assert all(s["prompt"] == "the" for s in samples)
    ended = ["the" + s["text"] + ("" if s["text"].endswith("\n") else "\n") for s in samples]
    assert invoke(*options, "-n", "3").stdout == "\n".join(ended)
    assert invoke(*options, "-n", "3", "--separator", "--\n").stdout == "--\n".join(ended)
    result = invoke(*options, "--no-echo")
    assert result.stdout == ended[0][3:] and result.stderr == ""


def test_stdin_prompt_and_unseen_characters(checkpoint):
    options = [str(checkpoint), "--seed", "1", "--length", "10", "-q", "--json"]
    from_stdin = json.loads(invoke(*options, "--prompt", "-", input=UNSEEN).stdout)
    assert from_stdin["prompt"] == UNSEEN
    assert json.loads(invoke(*options, "--prompt", UNSEEN).stdout) == from_stdin
    assert invoke(str(checkpoint), "--prompt", UNSEEN, "-q").stdout.startswith(UNSEEN)


def test_stop_and_chars_options(checkpoint):
    base = [str(checkpoint), "--seed", "9", "--length", "60", "-q", "--json"]
    free = json.loads(invoke(*base).stdout)["text"]
    stop = free[20:22]
    cut = json.loads(invoke(*base, "--stop", "\x00never", "--stop", stop).stdout)
    assert cut["text"] == free[: free.find(stop) + 2] and cut["finish"] == "stop"
    assert json.loads(invoke(*base, "--chars", "9").stdout)["text"] == free[:9]


def test_default_checkpoint_is_the_newest(checkpoint, tokenizer):
    Path("checkpoints").mkdir()
    older = Path("checkpoints/older.safetensors")
    save_model(older, tiny_model(tokenizer.vocab_size, seed=9), tokenizer, {})
    newest = Path("checkpoints/newest.safetensors")
    newest.write_bytes(checkpoint.read_bytes())
    options = ["--seed", "3", "--length", "20", "--json"]
    result = invoke(*options)
    assert "newest.safetensors" in result.stderr
    assert json.loads(result.stdout) == json.loads(invoke(str(checkpoint), *options).stdout)


def test_bad_checkpoints_give_one_line(checkpoint, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    cases = {
        str(tmp_path / "missing.safetensors"): "does not exist",
        str(tmp_path): "is a directory",
        str(truncated): "not a readable safetensors",
        str(foreign): "not an rnngen checkpoint",
    }
    for path, fragment in cases.items():
        result = invoke(path)
        assert result.exit_code == 1 and result.stdout == "", path
        assert result.stderr.startswith("error: ") and fragment in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert "none found" in invoke().stderr  # no ./checkpoints at all


@pytest.mark.parametrize(
    "option,fragment",
    [
        (["--temp", "-0.5"], "--temp"),
        (["--top-p", "0"], "--top-p"),
        (["--top-p", "1.01"], "--top-p"),
        (["--top-k", "-2"], "--top-k"),
        (["--length", "0"], "--length"),
        (["-n", "0"], "--num-samples"),
        (["--chars", "0"], "--chars"),
        (["--stop", ""], "--stop"),
        (["--device", "tpu"], "unknown device"),
        (["--precision", "fp8"], "unknown precision"),
        (["--threads", "0"], "--threads"),
        (["--ngram", "--ngram-order", "12"], "--ngram-order"),
    ],
)
def test_bad_options_give_one_line(checkpoint, option, fragment):
    result = invoke(str(checkpoint), *option)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ngram_option(tokenizer, model, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(200))
    size = corpus.stat().st_size
    ids = tokenizer.encode_array(corpus.read_text())
    split = {"file": "train.bin", "source": str(corpus), "tokens": len(ids), "chars": size,
             "bytes": size, "start": 0, "end": size}  # fmt: skip
    path = tmp_path / "m.safetensors"
    meta = {"format": "rnngen-tokens/1", "tokenizer": {}, "dtype": "uint16",
            "splits": {"train": split}, "provenance": {}}  # fmt: skip
    provenance = {"corpus": str(corpus), "tokenized_meta": meta}
    save_model(path, model, tokenizer, {"provenance": provenance})
    result = invoke(str(path), "--ngram", "--ngram-order", "3", "--temp", "0", "--length", "30")
    assert result.exit_code == 0 and "Kneser-Ney" in result.stderr
    assert set(result.stdout) <= set(tiny_text(200))
    corpus.unlink()
    result = invoke(str(path), "--ngram")
    assert result.exit_code == 1 and "moved or changed" in result.stderr


def test_real_process_stdout_is_text_stderr_is_logs(checkpoint):
    result = run_cli("sample", str(checkpoint), "--seed", "5", "--length", "20", "--prompt", "-",
                     input="the cat")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the cat") and result.stdout.endswith("\n")
    assert "seed 5" in result.stderr and "sampling" in result.stderr
    assert "the cat" not in result.stderr
