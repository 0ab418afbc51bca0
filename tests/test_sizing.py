"""Automatic model sizing: the rule, given measured throughputs, and the CLI around it.

Throughputs are injected (no timing in these tests): the choice is a pure function of what
was measured, the run's length and the corpus size.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from conftest import run_cli, tiny_text
from rnngen.model import RNNLM, count_parameters
from rnngen.training import sizing

VOCAB = 1024


def rates_like(base_rate: float):
    """A machine whose throughput falls with the parameter count, as measured ones do:
    `base_rate` tokens/s for the smallest rung, proportionally less for bigger ones."""
    smallest = sizing.parameters_of(sizing.candidate_config(*sizing.LADDER[0], VOCAB))

    def rate_of(config):
        return base_rate * smallest / sizing.parameters_of(config)

    return rate_of


def choose(base_rate, budget=None, corpus_tokens=400_000, fixed_tokens=None, clock=None):
    kwargs = {"clock": clock} if clock else {}
    return sizing.choose(
        VOCAB, corpus_tokens, budget, fixed_tokens, rates_like(base_rate), 2048, **kwargs
    )


def read_metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def size_of(choice) -> int:
    return sizing.parameters_of(sizing.candidate_config(choice.layers, choice.hidden_size, VOCAB))


def test_parameter_count_matches_the_model():
    for layers, hidden in sizing.LADDER[:8]:
        for options in ({}, {"tie": False}, {"embed_size": 64}, {"cell": "gru"}):
            config = sizing.candidate_config(layers, hidden, 300, **options)
            assert sizing.parameters_of(config) == count_parameters(RNNLM(config))


def test_a_bigger_budget_buys_a_bigger_model():
    sizes = [size_of(choose(200_000, budget=b, corpus_tokens=10**8)) for b in (10, 60, 600, 6000)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_a_faster_machine_buys_a_bigger_model():
    slow, fast = choose(50_000, budget=60), choose(2_000_000, budget=60, corpus_tokens=10**8)
    assert size_of(slow) < size_of(fast)


def test_a_tiny_corpus_gets_a_small_model():
    big, tiny = choose(10**7, budget=600, corpus_tokens=10**8), choose(10**7, 600, 5_000)
    assert size_of(tiny) < size_of(big)
    assert (tiny.layers, tiny.hidden_size) == sizing.LADDER[0]


def test_a_fixed_length_ignores_speed():
    """In steps or epochs every size sees the same tokens; speed only matters when measuring
    a size would overrun the probe's few seconds (a very slow machine)."""
    slow = choose(1_000_000, fixed_tokens=3_000_000)
    fast = choose(100_000_000, fixed_tokens=3_000_000)
    assert (slow.layers, slow.hidden_size) == (fast.layers, fast.hidden_size)
    assert size_of(choose(100_000_000, fixed_tokens=300_000)) < size_of(fast)


def test_the_choice_is_deterministic_given_the_measurements():
    assert choose(300_000, budget=180).as_dict() == choose(300_000, budget=180).as_dict()


def test_the_probe_stops_when_its_time_is_spent():
    now = [0.0]

    def clock():
        now[0] += 1.0  # every look at the clock: a second gone
        return now[0]

    choice = choose(10**9, budget=40, corpus_tokens=10**9, clock=clock)
    assert len(choice.measurements) <= 3  # 2 s allowed for a 40 s budget
    assert "probe" in choice.reason


def test_the_smallest_rung_is_always_a_choice():
    choice = choose(1.0, budget=1)  # one token per second: nothing fits
    assert (choice.layers, choice.hidden_size) == sizing.LADDER[0]
    assert len(choice.measurements) == 1


def test_the_choice_explains_itself():
    choice = choose(400_000, budget=180)
    line = choice.summary()
    assert line.startswith("size: measured 1x128") and f"chose {choice.layers}x" in line
    record = json.loads(json.dumps(choice.as_dict()))
    assert record["layers"] == choice.layers and "1x128" in record["measured"]


def test_measure_rate_runs_real_steps():
    config = sizing.candidate_config(1, 16, 50)
    rate = sizing.measure_rate(config, 4, 8, torch.device("cpu"), "fp32", min_seconds=0.0)
    assert rate > 0


# -- through the CLI -------------------------------------------------------------------------

SMALL_RUN = ("--max-steps", "3", "--kind", "char", "--batch-size", "4", "--seq-len", "16", "-q")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_text(300))
    return path


def test_auto_size_is_measured_logged_and_recorded(tmp_path, corpus):
    out = tmp_path / "m.safetensors"
    result = run_cli("train", str(corpus), "-o", str(out), *SMALL_RUN[:-1])
    assert result.returncode == 0, result.stderr
    assert "size: measured 1x128" in result.stderr
    meta = read_metadata(out)
    recorded = json.loads(meta["sizing"])
    model = json.loads(meta["model_config"])
    assert (model["layers"], model["hidden_size"]) == (recorded["layers"], recorded["hidden_size"])
    # --resume keeps the model it was given, and never measures again
    resumed = run_cli(
        "train", str(corpus), "-o", str(out), "--resume", *SMALL_RUN[:-1], "--max-steps", "5"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "size:" not in resumed.stderr
    assert json.loads(read_metadata(out)["model_config"]) == model


def test_explicit_sizes_bypass_the_probe(tmp_path, corpus):
    out = tmp_path / "m.safetensors"
    result = run_cli("train", str(corpus), "-o", str(out), "--hidden", "24", *SMALL_RUN[:-1])
    assert result.returncode == 0, result.stderr
    assert "size:" not in result.stderr
    meta = read_metadata(out)
    model = json.loads(meta["model_config"])
    assert (model["layers"], model["hidden_size"], model["embed_size"]) == (1, 24, 24)
    assert "sizing" not in meta


def test_named_sizes_and_bad_ones(tmp_path, corpus):
    out = tmp_path / "m.safetensors"
    result = run_cli(
        "train", str(corpus), "-o", str(out), "--size", "small", "--hidden", "16", *SMALL_RUN
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(read_metadata(out)["model_config"])
    assert (model["layers"], model["hidden_size"]) == (1, 16)  # --hidden wins over --size
    bad = run_cli("train", str(corpus), "-o", str(out), "--size", "huge", *SMALL_RUN)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --size")


def test_the_learning_rate_follows_the_width_unless_given():
    from rnngen.config import TrainConfig, learning_rate_for, with_learning_rate

    assert learning_rate_for(512) == pytest.approx(8e-3)
    assert learning_rate_for(256) > learning_rate_for(384) > learning_rate_for(512)
    assert learning_rate_for(16) == learning_rate_for(128) == learning_rate_for(256)
    assert with_learning_rate(TrainConfig(), 256).lr == learning_rate_for(256)
    assert with_learning_rate(TrainConfig(lr=1e-3), 256).lr == 1e-3


def test_the_checkpoint_records_the_learning_rate_used(tmp_path, corpus):
    out = tmp_path / "m.safetensors"
    result = run_cli("train", str(corpus), "-o", str(out), "--hidden", "16", *SMALL_RUN)
    assert result.returncode == 0, result.stderr
    from rnngen.config import learning_rate_for

    assert json.loads(read_metadata(out)["train_config"])["lr"] == learning_rate_for(16)
