"""CPU threads (rnngen/threads/): the choice as a pure function of measured times, the
Tuner that adapts the count as a loop runs (with injected times and clock: no timed
assertions), --threads and OMP_NUM_THREADS on every command, and training that probes
without changing what it computes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_text
from rnngen.checkpoint import metrics_path
from rnngen.cli import app
from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError
from rnngen.model import RNNLM
from rnngen.threads import (
    MAX_INTERVAL,
    PROBE_UNITS,
    RECENT,
    ThreadPlan,
    Tuner,
    choose,
    ladder,
    plan_threads,
    running,
    timed,
    usable_cores,
)
from rnngen.training.loop import Step, ThreadsChanged, Trainer

CPU = torch.device("cpu")


# -- the choice: a pure function of step times ------------------------------------------------


def test_contended_times_choose_fewer_threads_and_quiet_ones_all_cores():
    # On 2 cores beside a busy program (BENCHMARKS.md): 2 threads 3.5x slower than quiet.
    contended = {2: [0.21, 0.19, 0.25, 0.20, 0.22], 1: [0.095, 0.097, 0.094]}
    quiet = {2: [0.056, 0.057, 0.055, 0.058, 0.056], 1: [0.096, 0.095, 0.097]}
    assert choose(2, contended) == 1
    assert choose(1, contended) == 1
    assert choose(2, quiet) == 2
    assert choose(1, quiet) == 2


def test_choice_keeps_the_current_count_within_the_margin():
    times = {2: [1.0, 1.0, 1.0], 1: [0.95, 0.95, 0.95]}  # 5% faster: noise, not a reason
    assert choose(2, times) == 2 and choose(1, times) == 1
    assert choose(2, {2: [1.0], 1: [0.8]}) == 1  # 20% faster with fewer threads: move
    assert choose(1, {1: [1.0], 2: [0.8]}) == 1  # but more threads must be 25% faster
    assert choose(1, {1: [1.0], 2: [0.7]}) == 2
    assert choose(2, {2: [1.0, 9.0, 1.0], 1: [1.5]}) == 2  # a median, not a mean
    assert choose(4, {}) == 4 and choose(4, {2: [1.0]}) == 2  # nothing, or only another count


def test_ladder():
    assert ladder(1) == (1,) and ladder(2) == (2, 1) and ladder(4) == (4, 3, 2, 1)
    assert ladder(8) == (8, 7, 4, 2, 1) and ladder(16) == (16, 15, 8, 4, 2, 1)


# -- the plan: --threads, OMP_NUM_THREADS, torchrun ----------------------------------------------


def test_plan_from_option_environment_and_torchrun():
    assert plan_threads(None, environ={}, cores=2) == ThreadPlan(2, True, "the usable cores")
    assert plan_threads(None, environ={}, cores=1).adaptive is False
    assert plan_threads(1, environ={}, cores=2) == ThreadPlan(1, False, "--threads")
    assert plan_threads("2", environ={"OMP_NUM_THREADS": "1"}, cores=2).threads == 2
    omp = plan_threads(None, environ={"OMP_NUM_THREADS": "1"}, cores=2)
    assert (omp.threads, omp.adaptive) == (1, False) and "OMP_NUM_THREADS=1" in omp.describe()
    assert plan_threads(None, environ={"OMP_NUM_THREADS": "3,1"}, cores=4).threads == 3
    lowered = plan_threads(None, environ={"OMP_NUM_THREADS": "8"}, cores=2)
    assert lowered.threads == 2 and "lowered" in lowered.why
    # "auto" adapts whatever the environment says
    assert plan_threads("auto", environ={"OMP_NUM_THREADS": "1"}, cores=2).adaptive
    assert plan_threads(" AUTO ", environ={}, cores=2).adaptive
    # torchrun: each process its share, as before (torchrun's own OMP_NUM_THREADS=1 ignored)
    shared = plan_threads(None, environ={"OMP_NUM_THREADS": "1"}, cores=8, processes=2)
    assert (shared.threads, shared.adaptive) == (4, False) and "torchrun" in shared.why
    assert plan_threads(None, environ={}, cores=2, processes=4).threads == 1
    assert plan_threads(3, environ={}, cores=8, processes=2).threads == 3
    assert "automatic, up to 2" in plan_threads(None, environ={}, cores=2).describe()


@pytest.mark.parametrize("value", [0, -1, "x", "1.5", "", "0"])
def test_bad_thread_counts_are_errors(value):
    with pytest.raises(RnngenError, match="--threads must be a whole number"):
        plan_threads(value, environ={}, cores=2)


def test_more_threads_than_cores_is_an_error_but_the_environment_is_lowered():
    with pytest.raises(RnngenError, match="may run on 2 cores"):
        plan_threads(3, environ={}, cores=2)
    for bad in ("x", "0", "-2", ",2"):
        with pytest.raises(RnngenError, match="OMP_NUM_THREADS"):
            plan_threads(None, environ={"OMP_NUM_THREADS": bad}, cores=2)


# -- the Tuner, with injected times and clock ---------------------------------------------------


class Machine:
    """A fake machine: seconds per unit at each thread count, changed by the test; a clock
    that advances by the time of every unit of work."""

    def __init__(self, times: dict[int, float]):
        self.times, self.now, self.threads, self.calls = dict(times), 0.0, None, []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)

    def clock(self) -> float:
        return self.now

    def unit(self, tuner: Tuner):
        """One unit of the loop at the tuner's count; returns the Change, if any."""
        assert tuner.threads == self.threads
        seconds = self.times[self.threads]
        self.now += seconds
        return tuner.record(seconds)

    def probe(self) -> float:
        seconds = self.times[self.threads] / 3  # a forward pass: a third of a step
        self.now += seconds
        return seconds


def run_units(machine: Machine, tuner: Tuner, n: int) -> list:
    return [change for change in (machine.unit(tuner) for _ in range(n)) if change]


@pytest.mark.parametrize("side_probe", [False, True])
def test_quiet_machine_stays_at_all_cores_and_probes_less_and_less(side_probe):
    machine = Machine({2: 0.056, 1: 0.096})
    tuner = Tuner(2, machine.set_threads, start=2, clock=machine.clock,
                  probe=machine.probe if side_probe else None)  # fmt: skip
    assert machine.threads == 2
    assert run_units(machine, tuner, 3000) == [] and tuner.current == 2
    # the first probe comes after RECENT units; then the intervals double up to the most
    assert 0 < tuner.probes <= 4 + machine.now / MAX_INTERVAL  # about one per MAX_INTERVAL
    assert tuner.interval == MAX_INTERVAL
    if side_probe:  # the loop's own units never ran at another count
        assert tuner.units == {2: 3000, 1: 0}
    else:  # one unit at 1 thread per probe (1.7x slower: it ends there), and the first
        # time one more before it, which builds the kernels for that count
        assert tuner.units[1] == tuner.probes + 1


@pytest.mark.parametrize("side_probe", [False, True])
def test_busy_machine_moves_to_fewer_threads_and_back_when_it_frees_up(side_probe):
    machine = Machine({2: 0.20, 1: 0.096})  # beside a busy program
    changes = []
    probe = machine.probe if side_probe else None
    tuner = Tuner(2, machine.set_threads, start=2, clock=machine.clock,
                  on_change=changes.append, probe=probe)  # fmt: skip
    # the first unit builds kernels and is not compared; then RECENT units before a probe
    # with the loop's own units (none before a probe beside them), the first at a new count
    # (kernels again), and PROBE_UNITS to compare
    (change,) = run_units(machine, tuner, 1 + RECENT + 1 + PROBE_UNITS)
    assert (change.before, change.after) == (2, 1) and change.speedup == pytest.approx(2.08, 0.01)
    assert "1 now" in change.describe() and "busy" in change.describe()
    assert changes == [change] and machine.threads == 1
    assert run_units(machine, tuner, 1000) == [] and tuner.current == 1  # it stays busy
    machine.times[2] = 0.056  # the other program ended
    (back,) = run_units(machine, tuner, int(MAX_INTERVAL / 0.096) + 10)
    assert (back.before, back.after) == (1, 2) and "free again" in back.describe()


@pytest.mark.parametrize("side_probe", [False, True])
def test_it_starts_one_below_the_most_and_tries_more_at_once(side_probe):
    quiet = Machine({2: 0.056, 1: 0.096})
    tuner = Tuner(2, quiet.set_threads, clock=quiet.clock,
                  probe=quiet.probe if side_probe else None)  # fmt: skip
    assert quiet.threads == 1
    (change,) = run_units(quiet, tuner, 1 + RECENT + 1 + PROBE_UNITS)
    assert (change.before, change.after) == (1, 2)
    busy = Machine({2: 0.2, 1: 0.096})  # beside a busy program: never a collapsed unit
    tuner = Tuner(2, busy.set_threads, clock=busy.clock,
                  probe=busy.probe if side_probe else None)  # fmt: skip
    assert run_units(busy, tuner, 1000) == [] and tuner.units[2] <= tuner.probes + 1


def test_a_count_is_warmed_before_it_is_timed():
    machine, cold = Machine({2: 0.056, 1: 0.096}), set()

    def probe() -> float:  # the first run at a count builds its kernels: 100x as long
        seconds = machine.probe()
        if machine.threads not in cold:
            cold.add(machine.threads)
            return 100 * seconds
        return seconds

    tuner = Tuner(2, machine.set_threads, clock=machine.clock, probe=probe)
    (change,) = run_units(machine, tuner, 2)
    assert (change.before, change.after) == (1, 2)


def test_a_sudden_slowdown_probes_at_once():
    machine = Machine({2: 0.056, 1: 0.096})
    tuner = Tuner(2, machine.set_threads, clock=machine.clock)
    run_units(machine, tuner, 2000)  # quiet: probes now MAX_INTERVAL apart
    next_probe = tuner.next_probe
    machine.times[2] = 0.5  # a busy program starts: 2 threads collapse
    changes = run_units(machine, tuner, 2 + 3)  # two slow units show it; three at 1 thread
    assert [c.after for c in changes] == [1] and machine.now < next_probe


def test_slow_units_are_evidence_sooner():
    # Two trainings side by side, each with 2 threads: 60x slower steps (BENCHMARKS.md).
    machine = Machine({2: 3.4, 1: 0.1})
    tuner = Tuner(2, machine.set_threads, start=2, clock=machine.clock)
    changes = run_units(machine, tuner, 1 + 2 + 1 + PROBE_UNITS)  # 2 units of 3.4 s suffice
    assert [c.after for c in changes] == [1]
    machine = Machine({2: 0.056, 1: 0.096})
    tuner = Tuner(2, machine.set_threads, clock=machine.clock)
    run_units(machine, tuner, 2000)
    machine.times[2] = 3.0  # one unit that lost 3 s is a slowdown already
    assert [c.after for c in run_units(machine, tuner, 1 + PROBE_UNITS)] == [1]


def test_a_slowdown_that_fewer_threads_do_not_help_is_kept():
    machine = Machine({2: 0.056, 1: 0.096})
    tuner = Tuner(2, machine.set_threads, clock=machine.clock)
    run_units(machine, tuner, 2000)
    machine.times = {2: 0.2, 1: 0.4}  # everything slower (say, the CPU clocked down)
    probes, started = tuner.probes, machine.now
    assert run_units(machine, tuner, 500) == [] and tuner.current == 2
    # one probe for the slowdown, then the schedule's: not one every few units
    assert tuner.probes - probes <= 2 + (machine.now - started) / MAX_INTERVAL


def test_a_new_kind_of_work_starts_the_comparison_afresh():
    calls = []
    tuner = Tuner(2, calls.append, start=2, clock=lambda: 0.0)
    for _ in range(RECENT):
        tuner.record(1.0, 1, "windows")
    assert tuner.threads == 1  # probing with the next unit
    tuner.record(0.001, 1, "sequences")  # another phase: the probe is abandoned
    assert tuner.threads == 2 and tuner.current == 2 and not tuner.recent  # (kernels built)
    tuner.record(0.04, 2, "sequences")
    assert list(tuner.recent) == [(0.02, 0.04)] and calls == [2, 1, 2]
    for _ in range(10):  # short units (sampled tokens) are compared in chunks of 20 ms or more
        tuner.record(0.004, 1, "sequences")
    assert [round(s, 3) for _, s in tuner.recent] == [0.04, 0.02, 0.02]


def test_start_count_and_units():
    calls = []
    tuner = Tuner(4, calls.append, start=1, clock=lambda: 0.0)
    assert tuner.current == 1 and calls == [1]
    assert Tuner(4, calls.append, start=5, clock=lambda: 0.0).current == 4
    assert Tuner(4, calls.append, clock=lambda: 0.0).current == 3  # one below the most
    assert Tuner(1, calls.append, clock=lambda: 0.0).current == 1
    tuner.record(9.0, units=1000)  # the first unit builds kernels: not compared
    tuner.record(2.0, units=1000)
    assert tuner.recent[-1] == (pytest.approx(0.002), 2.0)  # seconds per unit, seconds


def test_running_applies_the_plan_restores_and_times_the_loops():
    before = torch.get_num_threads()
    with running(ThreadPlan(1, False, "test")) as tuner:
        assert tuner is None and torch.get_num_threads() == 1
        with timed(10):  # no tuner: nothing to report to
            pass
    assert torch.get_num_threads() == before
    with running(ThreadPlan(1, True, "test")) as tuner:
        for _ in range(3):
            with timed(10, "work"):
                pass
        assert tuner.units[1] == 3 and tuner.kind == "work"
    with timed(10):  # outside: nothing
        pass


# -- training: probes that do not change the math ----------------------------------------------


def tiny_trainer(steps=30):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, layers=1, hidden_size=64, embed_size=64, dropout=0.3)
    ids = np.random.default_rng(0).integers(0, 20, 4000).astype(np.uint16)
    cfg = TrainConfig(batch_size=4, seq_len=16, max_steps=steps, log_every=1, eval_tokens=200)
    return Trainer(RNNLM(config), ids, ids[:300], cfg, CPU, "fp32")


def test_thread_probes_leave_the_training_math_unchanged():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        plain = tiny_trainer()
        torch.manual_seed(5)
        list(plain.run())
        torch.set_num_threads(2)
        probed = tiny_trainer()
        probed.adapt_threads(2, start=2)
        forward = probed._forward_seconds
        ticks = iter(range(1_000_000))
        probed.tuner.clock = lambda: 100.0 * next(ticks)  # a probe due at every chance
        probed.tuner.next_probe = 0.0
        probed.tuner.probe = lambda: (forward(), 1.0)[1]  # real forward passes, equal times
        # Each step reported as a full chunk (a tiny step takes ~2 ms; pooled into 20 ms
        # chunks, the number of probes would depend on this machine's speed): every step
        # after the first (it builds kernels) is followed by a probe.
        record = probed.tuner.record
        probed.tuner.record = lambda seconds, units=1.0, kind=None: record(1.0, units, kind)
        torch.manual_seed(5)
        events = list(probed.run())
        assert probed.tuner.probes == 30 - 1 and probed.tuner.current == 2
        assert not [e for e in events if isinstance(e, ThreadsChanged)]
        for (name, a), b in zip(plain.model.state_dict().items(),
                                probed.model.state_dict().values(), strict=True):  # fmt: skip
            assert torch.equal(a, b), name
    finally:
        torch.set_num_threads(threads)


def test_training_moves_to_the_faster_count_and_says_so():
    threads = torch.get_num_threads()
    try:
        trainer = tiny_trainer(steps=20)
        trainer.adapt_threads(2, start=2)
        trainer.tuner.probe = lambda: 0.5 if torch.get_num_threads() == 2 else 0.1  # busy
        events = list(trainer.run())
        (change,) = [e for e in events if isinstance(e, ThreadsChanged)]
        assert (change.before, change.threads) == (2, 1) and "step" in change.describe()
        steps = [e for e in events if isinstance(e, Step)]
        assert {s.threads for s in steps if s.step <= change.step} == {2}
        assert {s.threads for s in steps if s.step > change.step} == {1}
    finally:
        torch.set_num_threads(threads)


def test_sizing_rates_each_size_at_the_faster_count_and_says_the_machine_looked_busy(
    monkeypatch,
):
    import rnngen.training.sizing
    from rnngen.training.distributed import Group
    from rnngen.training.run import Placement, _measure_and_choose

    def rates(config, batch, seq_len, device, precision, counts):
        assert counts == (2, 1)
        quiet = 4e7 / config.hidden_size**2
        return {2: quiet / 8, 1: quiet * 0.6}  # 2 threads collapse beside a busy program

    monkeypatch.setattr(rnngen.training.sizing, "measure_rates", rates)
    data = SimpleNamespace(tokenizer=SimpleNamespace(vocab_size=100),
                           train_ids=np.zeros(200_000, dtype=np.uint16))  # fmt: skip
    place = Placement(CPU, "fp32", Group(), ThreadPlan(2, True, "test"))
    options = {k: None for k in ("layers", "hidden_size", "embed_size")}
    plan = _measure_and_choose(data, options, TrainConfig(time_budget=60), place)
    assert plan.threads == 1 and plan.sizing["threads"]["contended"] is True
    first = plan.choice.measurements[0]
    assert first.tokens_per_second == pytest.approx(4e7 / 128**2 * 0.6)  # the faster count
    assert "looked busy" in plan.choice.summary() and "threads: 1" in plan.choice.summary()


def test_measure_rates_times_each_count():
    from rnngen.training.sizing import measure_rates

    threads = torch.get_num_threads()
    try:
        config = ModelConfig(vocab_size=30, layers=1, hidden_size=16, embed_size=16)
        rates = measure_rates(config, 2, 4, CPU, "fp32", (2, 1), min_seconds=0.0, max_steps=2)
        assert set(rates) == {2, 1} and all(rate > 0 for rate in rates.values())
    finally:
        torch.set_num_threads(threads)


# -- the commands ---------------------------------------------------------------------------------

TINY = dict(kind="char", hidden=16, batch_size=4, seq_len=16, max_steps=6, seed=3,
            device="cpu", precision="fp32")  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rnngen.training.run import train

    root = tmp_path_factory.mktemp("threads")
    corpus = root / "corpus.txt"
    corpus.write_text(tiny_text(300))
    threads = torch.get_num_threads()
    train(corpus, output=root / "m.safetensors", threads=1, **TINY)
    torch.set_num_threads(threads)
    return root / "m.safetensors"


def invoke(*args, env=None, input=None):
    threads = torch.get_num_threads()
    try:
        return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})},
                                  input=input)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def commands(checkpoint):
    corpus = str(checkpoint.parent / "corpus.txt")
    return {
        "train": ["train", corpus, "-o", str(checkpoint.parent / "new.safetensors")],
        "eval": ["eval", str(checkpoint), "--no-mix"],
        "score": ["score", str(checkpoint), corpus],
        "gradients": ["gradients", str(checkpoint), "-k", "4", "--positions", "4"],
        "sample": ["sample", str(checkpoint), "--length", "5", "--seed", "1"],
    }


@pytest.mark.parametrize("command", ["train", "eval", "score", "gradients", "sample"])
@pytest.mark.parametrize(
    "option, env, fragment",
    [
        (["--threads", "0"], {}, "--threads must be a whole number"),
        (["--threads", "-1"], {}, "--threads must be a whole number"),
        (["--threads", "x"], {}, "--threads must be a whole number"),
        (["--threads", "4096"], {}, "--threads 4096: this process may run on"),
        ([], {"OMP_NUM_THREADS": "x"}, "OMP_NUM_THREADS='x' is not a number of threads"),
    ],
)
def test_bad_thread_counts_are_one_line(checkpoint, command, option, env, fragment):
    result = invoke(*commands(checkpoint)[command], *option, env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["eval", "score", "gradients", "sample"])
def test_commands_honour_threads_and_omp_num_threads(checkpoint, command):
    args = commands(checkpoint)[command]
    result = invoke(*args, "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "threads: 1 (--threads)" in result.stderr
    result = invoke(*args, env={"OMP_NUM_THREADS": "1"})
    assert result.exit_code == 0 and "threads: 1 (OMP_NUM_THREADS=1)" in result.stderr
    if usable_cores() > 1:  # automatic needs a second core to have a choice
        result = invoke(*args)
        assert result.exit_code == 0 and "threads: automatic, up to" in result.stderr


def test_train_honours_threads_and_records_them(checkpoint, tmp_path):
    corpus = str(checkpoint.parent / "corpus.txt")
    options = ["--kind", "char", "--hidden", "16", "--batch-size", "4", "--seq-len", "16",
               "--max-steps", "6", "--log-every", "1"]  # fmt: skip
    out = tmp_path / "a.safetensors"
    result = invoke("train", corpus, "-o", str(out), *options, env={"OMP_NUM_THREADS": "1"})
    assert result.exit_code == 0, result.output
    assert "threads: 1 (OMP_NUM_THREADS=1)" in result.stderr
    steps = [json.loads(line) for line in metrics_path(out).read_text().splitlines()]
    assert {s["threads"] for s in steps if s["event"] == "step"} == {1}
    out = tmp_path / "b.safetensors"
    result = invoke("train", corpus, "-o", str(out), *options, "--threads", "1", "-q")
    assert result.exit_code == 0 and result.stderr == ""


def test_the_api_takes_threads(checkpoint, tmp_path):
    from rnngen.training.run import train

    corpus = checkpoint.parent / "corpus.txt"
    with pytest.raises(RnngenError, match="^threads must be a whole number"):
        train(corpus, output=tmp_path / "a.safetensors", threads=0, **TINY)
    with pytest.raises(RnngenError, match="threads"):
        train(corpus, output=tmp_path / "a.safetensors", threads=True, **TINY)
    events, threads = [], torch.get_num_threads()
    try:
        train(corpus, output=tmp_path / "b.safetensors", threads=1, on_event=events.append,
              log_every=1, **TINY)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert {e.threads for e in events if isinstance(e, Step)} == {1}
