"""Data-parallel training: two gloo processes on the CPU against one process.

The library tests spawn two processes that train `Trainer`s side by side and report back
through files; the command test runs `python -m torch.distributed.run -m rnngen train` the
way a user would. Both compare with a single process on the same global batch.

Why weights may differ at all, and by how much: with dropout 0 and fp32, DDP's gradient is
the average of the two ranks' mean-loss gradients, which equals the single process's
mean-loss gradient exactly in real arithmetic (the ranks score equal token counts). In
float32 only the order of the sums differs, a relative error of about 1e-7 per step, and
AdamW's normalised steps do not amplify it over a dozen steps: measured differences are at
most ~1e-7 on weights of magnitude up to ~2. ATOL = 1e-5 leaves a hundredfold margin, while
any real fault (a rank on the wrong streams, clipping per rank instead of globally, a
rollback or step taken by one rank only) moves weights by 1e-4 or more after one step. The
logged loss and gradient norm (before clipping) are compared too: they would catch a summed
instead of averaged gradient, which AdamW's scale invariance hides in the weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import interrupt_once_written, tiny_text
from rnngen.checkpoint import load_model
from rnngen.config import ModelConfig, TrainConfig, from_json
from rnngen.corpus.store import batchify
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.training.distributed import Group
from rnngen.training.loop import Evaluation, Finished, Rollback, Step, Stopped, Trainer
from rnngen.training.resume_file import load_state

CPU = torch.device("cpu")
ATOL, RTOL = 1e-5, 1e-5  # see the module docstring
WORLD = 2


def tiny_model(dropout=0.0, embed_dropout=0.0):
    torch.manual_seed(0)
    return RNNLM(ModelConfig(vocab_size=20, hidden_size=32, embed_size=32, layers=2,
                             dropout=dropout, embed_dropout=embed_dropout))  # fmt: skip


def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 20, 4000).astype(np.uint16), rng.integers(0, 20, 300).astype(np.uint16)


def config(**kw):
    base = dict(batch_size=4, seq_len=16, lr=3e-3, warmup_steps=5, max_steps=12, log_every=1,
                clip=0.05, eval_tokens=200)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def steps_of(events) -> list[list[float]]:
    return [[e.step, e.loss, e.grad_norm] for e in events if isinstance(e, Step)]


# -- two spawned processes ----------------------------------------------------------------


def _worker(rank: int, port: int, out: str) -> None:
    """One rank: the scenarios below in turn, results to OUT/rank{K}.json and weights."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD))
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    group = Group.from_env()
    group.connect(CPU)
    ids, valid = data()
    report: dict = {}

    def save(name, trainer):
        save_file(dict(trainer.model.state_dict()), f"{out}/rank{rank}.{name}.safetensors")

    # Same global batch as one process, dropout 0: compared with a single-process run.
    trainer = Trainer(tiny_model(), ids, valid, config(), CPU, "fp32", group=group)
    report["streams"] = list(trainer.stream_range)
    report["head"] = trainer.streams[:, :3].tolist()
    report["match"] = steps_of(trainer.run())
    save("match", trainer)

    # With dropout, straight through, then stopped by rank 1 alone and resumed.
    dropout = dict(dropout=0.3, embed_dropout=0.1)
    torch.manual_seed(5 + rank)
    straight = Trainer(tiny_model(**dropout), ids, valid, config(max_steps=24), CPU, "fp32",
                       group=group)  # fmt: skip
    list(straight.run())
    save("straight", straight)
    torch.manual_seed(5 + rank)
    first = Trainer(tiny_model(**dropout), ids, valid, config(max_steps=24), CPU, "fp32",
                    group=group)  # fmt: skip
    for event in first.run():
        if rank == 1 and getattr(event, "step", 0) >= 9:
            first.request_stop()
        if isinstance(event, Stopped):
            report["stopped_at"] = event.step
            break
    tensors, info = first.resume_state()
    torch.manual_seed(999)  # the saved per-rank RNG state must win
    second = Trainer(tiny_model(**dropout), ids, valid, config(max_steps=24), CPU, "fp32",
                     resume=(tensors, json.loads(json.dumps(info))), group=group)  # fmt: skip
    list(second.run())
    save("resumed", second)

    # NaN on rank 1 alone: both ranks roll back at the same step.
    trainer = Trainer(tiny_model(), ids, valid, config(max_steps=24), CPU, "fp32", group=group)
    events, poisoned = [], False
    for event in trainer.run():
        events.append(event)
        if isinstance(event, Evaluation) and not poisoned and rank == 1:
            poisoned = True
            with torch.no_grad():
                trainer.model.embedding.weight[3] = float("nan")
    report["rollbacks"] = [[e.step, e.lr_scale] for e in events if isinstance(e, Rollback)]
    save("rollback", trainer)

    # A time budget with rank 1 slower: both end on the same step (or they would deadlock).
    trainer = Trainer(tiny_model(), ids, valid, config(max_steps=None, time_budget=1.0), CPU,
                      "fp32", group=group)  # fmt: skip
    if rank == 1:
        step = trainer._train_step
        trainer._train_step = lambda: (time.sleep(0.01), step())[1]
    report["budget_steps"] = [e.step for e in trainer.run() if isinstance(e, Finished)]

    try:
        Trainer(tiny_model(), ids, valid, config(batch_size=3), CPU, "fp32", group=group)
    except RnngenError as e:
        report["indivisible"] = str(e)
    Path(f"{out}/rank{rank}.json").write_text(json.dumps(report))
    group.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run _worker in two spawned processes; their reports and weights, by rank."""
    out = tmp_path_factory.mktemp("ranks")
    spawn = multiprocessing.get_context("spawn")
    port = free_port()
    processes = [spawn.Process(target=_worker, args=(r, port, str(out))) for r in range(WORLD)]
    for p in processes:
        p.start()
    deadline = time.monotonic() + 150
    for p in processes:
        p.join(max(1.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():  # a deadlock is a failure, not a hung test run
            p.kill()
            p.join()
    assert [p.exitcode for p in processes] == [0] * WORLD, "a rank failed or deadlocked"

    def weights(rank, name):
        return load_file(out / f"rank{rank}.{name}.safetensors")

    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return reports, weights


def assert_same(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if exact:
            assert torch.equal(a[name], b[name]), name
        else:
            torch.testing.assert_close(a[name], b[name], atol=ATOL, rtol=0, msg=name)


def test_ranks_train_on_disjoint_contiguous_streams(two_ranks):
    reports, _ = two_ranks
    ids, _ = data()
    streams = batchify(ids, 4)
    assert [r["streams"] for r in reports] == [[0, 2], [2, 4]]
    for report in reports:
        start, stop = report["streams"]
        assert report["head"] == streams[start:stop, :3].tolist()


def test_matches_one_process_with_the_same_global_batch(two_ranks):
    reports, weights = two_ranks
    ids, valid = data()
    single = Trainer(tiny_model(), ids, valid, config(), CPU, "fp32")
    single_steps = steps_of(single.run())
    for rank in range(WORLD):  # every rank logs the global loss and the global norm
        assert len(reports[rank]["match"]) == len(single_steps) == 12
        for (step, loss, norm), (s_step, s_loss, s_norm) in zip(
            reports[rank]["match"], single_steps, strict=True
        ):
            assert step == s_step
            assert loss == pytest.approx(s_loss, rel=RTOL)
            assert norm == pytest.approx(s_norm, rel=RTOL) and norm > 0.05  # clipping engaged
    assert_same(weights(0, "match"), weights(1, "match"), exact=True)  # replicas in lockstep
    assert_same(weights(0, "match"), dict(single.model.state_dict()), exact=False)


def test_stop_on_one_rank_is_collective_and_resume_is_bitwise(two_ranks):
    reports, weights = two_ranks
    assert reports[0]["stopped_at"] == reports[1]["stopped_at"] > 0
    for rank in range(WORLD):
        assert_same(weights(rank, "straight"), weights(rank, "resumed"), exact=True)
    assert_same(weights(0, "resumed"), weights(1, "resumed"), exact=True)


def test_nan_on_one_rank_rolls_back_every_rank(two_ranks):
    reports, weights = two_ranks
    assert reports[0]["rollbacks"] == reports[1]["rollbacks"] and len(reports[0]["rollbacks"]) == 1
    assert reports[0]["rollbacks"][0][1] == 0.5
    assert all(torch.isfinite(w).all() for w in weights(1, "rollback").values())
    assert_same(weights(0, "rollback"), weights(1, "rollback"), exact=True)


def test_time_budget_ends_every_rank_on_the_same_step(two_ranks):
    reports, _ = two_ranks
    assert reports[0]["budget_steps"] == reports[1]["budget_steps"] != []


def test_batch_must_split_evenly(two_ranks):
    reports, _ = two_ranks
    assert "multiple of the 2 processes" in reports[0]["indivisible"]


def test_single_process_group_is_inert(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    group = Group.from_env()
    assert not group.enabled and group.is_main and group.connect(CPU) == CPU
    assert group.stream_range(5) == (0, 5) and group.max([1.0, 2.0]) == [1.0, 2.0]
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1 is a single process
    assert not Group.from_env().enabled
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RnngenError, match="torchrun environment is incomplete"):
        Group.from_env()


# -- the command under torchrun -----------------------------------------------------------

OPTIONS = ["--hidden", "32", "--embed", "32", "--layers", "1", "--batch-size", "4",
           "--seq-len", "16", "--dropout", "0", "--embed-dropout", "0", "--clip", "0.1",
           "--device", "cpu", "--precision", "fp32", "--log-every", "1", "--json"]  # fmt: skip


def rnngen(*args, torchrun=False, **kw):
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD)]
    command = [sys.executable, *(launcher if torchrun else []), "-m", "rnngen", *args]
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **kw)


def events(path: Path, kind: str) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["event"] == kind]


def test_torchrun_trains_like_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path / "cache"))  # holds this corpus alone
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(600))
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    one = rnngen("train", str(corpus), "-o", str(single), "--max-steps", "12", *OPTIONS)
    assert one.returncode == 0, one.stderr
    two = rnngen("train", str(corpus), "-o", str(ddp), "--max-steps", "12", *OPTIONS,
                 torchrun=True)  # fmt: skip
    assert two.returncode == 0, two.stderr
    summary = json.loads(two.stdout)  # one JSON line: only rank 0 prints
    assert summary["steps"] == 12 and "2 processes (gloo)" in two.stderr
    assert two.stderr.count("done: 12 steps") == 1

    model, _, _ = load_model(ddp)
    reference, _, _ = load_model(single)
    assert_same(model.state_dict(), reference.state_dict(), exact=False)

    ddp_steps = events(ddp.with_name("ddp.metrics.jsonl"), "step")
    single_steps = events(single.with_name("single.metrics.jsonl"), "step")
    assert len(ddp_steps) == len(single_steps) == 12  # rank 0 alone wrote the metrics
    for a, b in zip(ddp_steps, single_steps, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=RTOL)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=RTOL)

    (record,) = events(ddp.with_name("ddp.metrics.jsonl"), "distributed")
    assert record["world_size"] == 2 and record["backend"] == "gloo"
    (train_bin,) = Path(os.environ["RNNGEN_CACHE"]).glob("tokens/*/train.bin")
    ids = np.fromfile(train_bin, dtype=np.uint16)
    streams = batchify(ids, 4)
    for rank, shard in enumerate(record["ranks"]):
        assert shard["rank"] == rank and shard["streams"] == [2 * rank, 2 * rank + 2]
        head = np.ascontiguousarray(streams[2 * rank : 2 * rank + 2, :17])
        assert shard["head_sha256"] == hashlib.sha256(head.tobytes()).hexdigest()

    tensors, info = load_state(ddp)  # one resume file, with every rank's RNG and hidden state
    assert info["world_size"] == 2 and not list(tmp_path.glob("*rank*"))
    assert {"rank0.rng.cpu", "rank1.rng.cpu", "rank0.state.0.0", "rank1.state.0.1"} <= set(tensors)
    model = RNNLM(from_json(ModelConfig, info["model_config"]))
    with pytest.raises(RnngenError, match="same number of processes as the run it continues"):
        Trainer(model, ids, ids[:300], config(), CPU, "fp32", resume=(tensors, info))


@pytest.mark.slow
def test_torchrun_ctrl_c_saves_and_resumes(tmp_path):
    """SIGINT to torchrun: it forwards the signal, the ranks stop on one step, rank 0 saves."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(600))
    out = tmp_path / "m.safetensors"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(WORLD), "-m", "rnngen"]  # fmt: skip
    command = [*launcher, "train", str(corpus), "-o", str(out), "--time-budget", "5m",
               "--eval-every", "5", *OPTIONS]  # fmt: skip
    process = interrupt_once_written(command, out)
    _, stderr = process.communicate(timeout=120)
    assert "state saved" in stderr and stderr.count("interrupted at step") == 1
    stopped = int(stderr.split("interrupted at step ")[1].split(";")[0])
    load_model(out)
    resumed = rnngen("train", str(corpus), "-o", str(out), "--resume", "--time-budget", "5m",
                     "--max-steps", str(stopped + 5), *OPTIONS, torchrun=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {stopped}" in resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == stopped + 5
    assert math.isfinite(json.loads(resumed.stdout)["best_valid_loss"])


def test_torchrun_sizes_the_model_once_for_every_rank(tmp_path, monkeypatch):
    """Automatic sizing under torchrun: rank 0 measures, every rank builds what it chose
    (DistributedDataParallel refuses ranks whose parameters differ, so a finished run is
    the proof), and only rank 0 says so."""
    monkeypatch.setenv("RNNGEN_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(600))
    out = tmp_path / "auto.safetensors"
    assert OPTIONS[:6] == ["--hidden", "32", "--embed", "32", "--layers", "1"]
    auto = OPTIONS[6:]  # no size given
    result = rnngen("train", str(corpus), "-o", str(out), "--max-steps", "3", *auto,
                    torchrun=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("size: measured") == 1
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    sizing, model = json.loads(meta["sizing"]), json.loads(meta["model_config"])
    assert (model["layers"], model["hidden_size"]) == (sizing["layers"], sizing["hidden_size"])
