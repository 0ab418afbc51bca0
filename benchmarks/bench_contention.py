"""rnngen on a shared machine: training and evaluation beside other programs (issue 29).

Runs the real commands as subprocesses, for this checkout ("after") and, with --before PATH,
another one ("before": e.g. the main branch's checkout, run with PYTHONPATH=PATH), in turn,
repeats interleaved, medians reported. Prints one JSON line.

- train: `rnngen train tinyshakespeare --size base` (the default 1x512 model, bpe 1024) for
  --seconds of training, alone ("quiet"), beside one busy single-threaded process ("busy"), and
  beside a second identical `rnngen train` started with it ("pair", the two rates summed).
  Tokens/s = steps x 1024 / training seconds (evaluations excluded; thread probes included).
- eval: wall time of `rnngen eval CHECKPOINT` (the checkpoint the first quiet run wrote; caches
  warmed by one untimed run) alone and beside a busy process.
- --knobs: instead, the OpenMP settings tried before choosing to adapt the thread count: one
  training step of the same model in a fresh process at 2 threads with OMP_WAIT_POLICY=PASSIVE
  or GOMP_SPINCOUNT=N (read once, when torch loads), and at 1 thread; quiet and busy.
- --reference: instead, the reference task (`rnngen train tinyshakespeare --time-budget 180`,
  sizing included) once alone and once started beside a busy process that stops after
  --busy-for seconds; best validation bits/char of each.

Load control: run it under `flock /work/locks/cpu`. It also moves itself into a new session
whose autogroup gets nice -20 (Linux; needs root), so that other sessions' processes (nice 0)
barely compete with what it measures; the busy processes it starts run in that autogroup and
compete as equals. "others" is the CPU (in cores) the rest of the machine used during each
measurement, from /proc/stat less this script's own processes.

    flock /work/locks/cpu python benchmarks/bench_contention.py --before ../main
    flock /work/locks/cpu python benchmarks/bench_contention.py --before ../main --precision fp32
    flock /work/locks/cpu python benchmarks/bench_contention.py --knobs
    flock /work/locks/cpu python benchmarks/bench_contention.py --before ../main --reference
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare"
STEP_TOKENS = 16 * 64  # the default batch x sequence length


# -- measuring ------------------------------------------------------------------------------


def isolate() -> bool:
    """A new session with autogroup nice -20; False where Linux or permissions refuse it."""
    with contextlib.suppress(OSError):  # already a session leader: its autogroup is its own
        os.setsid()
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("-20")
        return True
    except OSError:
        return False


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (not idle or waiting for I/O)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this script and its reaped children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


class Window:
    """The CPU the rest of the machine used while the block ran (cores); children must be
    reaped inside it."""

    def __enter__(self):
        self.start = (time.perf_counter(), machine_busy(), own_cpu())
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.start[0]
        others = machine_busy() - self.start[1] - (own_cpu() - self.start[2])
        self.wall, self.others = wall, round(max(others, 0.0) / wall, 2)


class Busy:
    """One busy single-threaded process for the duration of the block."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def env_of(checkout: Path | None, cache: Path, extra: dict | None = None) -> dict:
    env = {**os.environ, "NO_COLOR": "1", "RNNGEN_CACHE": str(cache), **(extra or {})}
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    return env


def train_command(out: Path, seconds: float, precision: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "rnngen", "train", str(CORPUS / "train.txt"),
            "--valid", str(CORPUS / "valid.txt"), "-o", str(out), "--force",
            "--time-budget", str(seconds), "--precision", precision, "--json", "-q",
            *options]  # fmt: skip


def start_training(out: Path, env: dict, args) -> subprocess.Popen:
    command = train_command(out, args.seconds, args.precision, "--size", "base",
                            "--eval-tokens", "2048")  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def finish_training(process: subprocess.Popen, out: Path) -> dict:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"rnngen train failed ({process.returncode}): {stderr[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    metrics = out.with_name(out.name.removesuffix(".safetensors") + ".metrics.jsonl")
    steps = [json.loads(line) for line in metrics.read_text().splitlines()]
    threads = [s.get("threads") for s in steps if s["event"] == "step"]
    one = sum(1 for t in threads if t == 1) / len(threads) if threads else None
    rate = summary["steps"] * STEP_TOKENS / summary["train_seconds"]
    return {"tokens_per_s": round(rate), "steps": summary["steps"],
            "one_thread_share": None if threads and threads[0] is None else one}  # fmt: skip


def train_condition(condition: str, env: dict, args, tmp: Path) -> dict:
    outs = [tmp / f"{condition}{i}.safetensors" for i in range(2 if condition == "pair" else 1)]
    with Window() as window:
        if condition == "busy":
            with Busy():
                results = [finish_training(start_training(outs[0], env, args), outs[0])]
        else:
            processes = [start_training(out, env, args) for out in outs]
            results = [finish_training(p, out) for p, out in zip(processes, outs, strict=True)]
    return {"tokens_per_s": sum(r["tokens_per_s"] for r in results),
            "each": [r["tokens_per_s"] for r in results],
            "one_thread_share": [r["one_thread_share"] for r in results],
            "others": window.others}  # fmt: skip


def eval_seconds(checkpoint: Path, env: dict, busy: bool) -> dict:
    command = [sys.executable, "-m", "rnngen", "eval", str(checkpoint), "-q", "--json"]
    with Window() as window:
        if busy:
            with Busy():
                result = subprocess.run(command, env=env, capture_output=True, text=True)
        else:
            result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"rnngen eval failed: {result.stderr[-2000:]}")
    return {"seconds": round(window.wall, 2), "others": window.others}


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# -- the three modes ---------------------------------------------------------------------------


def throughput(args, variants: dict, tmp: Path) -> dict:
    figures: dict = {"train": {}, "eval": {}}
    for name, env in variants.items():  # warm the token caches; this run's checkpoint is eval's
        finish_training(start_training(tmp / f"{name}.safetensors", env, args),
                        tmp / f"{name}.safetensors")  # fmt: skip
        eval_seconds(tmp / f"{name}.safetensors", env, busy=False)  # n-gram and mixture caches
    runs: dict = {name: {c: [] for c in ("quiet", "busy", "pair")} for name in variants}
    evals: dict = {name: {"quiet": [], "busy": []} for name in variants}
    for _ in range(args.repeats):
        for condition in ("quiet", "busy", "pair"):
            for name, env in variants.items():
                runs[name][condition].append(train_condition(condition, env, args, tmp))
        for busy in (False, True):
            for name, env in variants.items():
                result = eval_seconds(tmp / f"{name}.safetensors", env, busy)
                evals[name]["busy" if busy else "quiet"].append(result)
    for name in variants:
        quiet = median_of(runs[name]["quiet"], "tokens_per_s")
        figures["train"][name] = {
            condition: {
                "tokens_per_s": round(median_of(r, "tokens_per_s")),
                "share_of_quiet": round(median_of(r, "tokens_per_s") / quiet, 3),
                "runs": r,
            }  # fmt: skip
            for condition, r in runs[name].items()
        }
        quiet_eval = median_of(evals[name]["quiet"], "seconds")
        figures["eval"][name] = {
            "quiet_seconds": quiet_eval,
            "busy_seconds": median_of(evals[name]["busy"], "seconds"),
            "busy_over_quiet": round(median_of(evals[name]["busy"], "seconds") / quiet_eval, 2),
            "runs": evals[name],
        }
    if "before" in variants:
        after, before = figures["train"]["after"], figures["train"]["before"]
        figures["after_quiet_over_before_quiet"] = round(
            after["quiet"]["tokens_per_s"] / before["quiet"]["tokens_per_s"], 3
        )
    return figures


KNOB_STEP = """
import json, statistics, sys, time, torch
from rnngen.config import ModelConfig
from rnngen.hardware import autocast
from rnngen.model import RNNLM
threads, precision, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = RNNLM(ModelConfig(vocab_size=1024, layers=1, hidden_size=512, embed_size=512))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
x, cpu = torch.randint(0, 1024, (16, 65)), torch.device("cpu")
def step():
    started = time.perf_counter()
    with autocast(cpu, precision):
        logp, _, _ = model(x[:, :-1], None, targets=x[:, 1:])
    loss = -logp.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    loss.item()
    return time.perf_counter() - started
step(); step()
times, end = [], time.perf_counter() + seconds
while time.perf_counter() < end or len(times) < 3:
    times.append(step())
print(json.dumps(16 * 64 / statistics.median(times)))
"""

KNOBS = {  # name: (threads, environment)
    "2 threads (default wait policy)": (2, {}),
    "1 thread": (1, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "2 threads, GOMP_SPINCOUNT=1000": (2, {"GOMP_SPINCOUNT": "1000"}),
    "2 threads, GOMP_SPINCOUNT=10000": (2, {"GOMP_SPINCOUNT": "10000"}),
    "2 threads, GOMP_SPINCOUNT=30000": (2, {"GOMP_SPINCOUNT": "30000"}),
    "2 threads, GOMP_SPINCOUNT=100000": (2, {"GOMP_SPINCOUNT": "100000"}),
}


def knobs(args, cache: Path) -> dict:
    results: dict = {name: {"quiet": [], "busy": []} for name in KNOBS}
    for _ in range(args.repeats):
        for busy in (False, True):
            for name, (threads, extra) in KNOBS.items():
                command = [sys.executable, "-c", KNOB_STEP, str(threads), args.precision, "4"]
                env = env_of(None, cache, extra)
                with Window() as window:
                    if busy:
                        with Busy():
                            out = subprocess.run(command, env=env, capture_output=True, text=True)
                    else:
                        out = subprocess.run(command, env=env, capture_output=True, text=True)
                rate = json.loads(out.stdout.strip().splitlines()[-1])
                results[name]["busy" if busy else "quiet"].append(
                    {"tokens_per_s": round(rate), "others": window.others}
                )
    reference = median_of(results["2 threads (default wait policy)"]["quiet"], "tokens_per_s")
    return {
        name: {
            condition: {
                "tokens_per_s": round(median_of(r, "tokens_per_s")),
                "share_of_default_quiet": round(median_of(r, "tokens_per_s") / reference, 3),
                "others": [x["others"] for x in r],
            }  # fmt: skip
            for condition, r in by.items()
        }
        for name, by in results.items()
    }


def reference(args, variants: dict, tmp: Path) -> dict:
    figures = {}
    for name, env in variants.items():
        figures[name] = {}
        for condition in ("quiet", "busy_at_start"):
            out = tmp / f"ref-{name}-{condition}.safetensors"
            command = train_command(out, 180, args.precision)
            with Window() as window:
                process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)  # fmt: skip
                if condition == "busy_at_start":
                    with Busy(), contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(args.busy_for)
                stdout, stderr = process.communicate()
            if process.returncode != 0:
                raise SystemExit(f"rnngen train failed: {stderr[-2000:]}")
            summary = json.loads(stdout.strip().splitlines()[-1])
            from safetensors import safe_open

            with safe_open(str(out), "np") as f:
                sizing = json.loads(f.metadata().get("sizing", "null"))
            metrics = out.with_name(out.name.removesuffix(".safetensors") + ".metrics.jsonl")
            steps = [json.loads(line) for line in metrics.read_text().splitlines()]
            threads = [(s["step"], s.get("threads")) for s in steps if s["event"] == "step"]
            changes = [(step, t) for i, (step, t) in enumerate(threads)
                       if i == 0 or t != threads[i - 1][1]]  # fmt: skip
            figures[name][condition] = {
                "best_valid_bpc": summary["best_valid_bpc"], "steps": summary["steps"],
                "size": f"{sizing['layers']}x{sizing['hidden_size']}" if sizing else None,
                "threads_from_step": changes, "wall_s": round(window.wall),
                "others": window.others,
            }  # fmt: skip
        quiet, busy = figures[name]["quiet"], figures[name]["busy_at_start"]
        figures[name]["bpc_cost_of_the_busy_start"] = round(
            busy["best_valid_bpc"] - quiet["best_valid_bpc"], 4
        )
    return figures


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return []
    return sorted({"amx_bf16", "avx512_bf16", "avx2"} & set(flags))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout to compare (PYTHONPATH)")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--seconds", type=float, default=15.0, help="training seconds a run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--knobs", action="store_true")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--busy-for", type=float, default=90.0)
    args = parser.parse_args()
    if not CORPUS.is_dir() and not args.knobs:
        raise SystemExit(f"needs {CORPUS} (the shared corpora)")
    isolated = isolate()
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.chdir(tmp)  # `python -m rnngen` looks in the working directory first
        cache = tmp / "cache"
        variants = {"after": env_of(ROOT, cache)}
        if args.before:
            variants = {"before": env_of(args.before.resolve(), cache), **variants}
        figures = {
            "date": time.strftime("%Y-%m-%d"),
            "cpu_flags": cpu_flags(),
            "cores": len(os.sched_getaffinity(0)),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "autogroup_nice_-20": isolated,
            "precision": args.precision,
        }
        if args.knobs:
            figures.update(repeats=args.repeats, knobs=knobs(args, cache))
        elif args.reference:
            figures.update(busy_for_s=args.busy_for, reference=reference(args, variants, tmp))
        else:
            figures.update(seconds=args.seconds, repeats=args.repeats,
                           **throughput(args, variants, tmp))  # fmt: skip
        os.chdir(here)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
