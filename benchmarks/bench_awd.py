"""AWD-LSTM's regularizers against plain dropout, on a run long enough to overfit.

    python benchmarks/bench_awd.py [--budget SECONDS] [--hidden N] [--layers N]
                                   [--precision auto|fp32] [--keep DIR]

Word-level tinyshakespeare (`--kind word --vocab-size 8000`, so the adaptive softmax; needs
../shared) and one model size, trained twice for the same wall-clock budget (default 20
minutes), side by side, each process pinned to its own core with one thread (so the two
runs see the same machine and neither steals from the other):

- plain: standard dropout 0.3 on the input, between layers and on the output;
- awd: locked dropout 0.4 (input) / 0.25 (between layers) / 0.4 (output), embedding dropout
  0.1, weight drop 0.5, AR 2, TAR 1, variable BPTT and weight averaging (the preset's
  regularizers, `--preset awd`, at this size).

Prints one JSON line: each run's steps, tokens/s, best validation bits/char, its validation
curve and its last training loss (the gap between the two shows the overfitting).

First (`--skip-kernel` leaves it out) it times one training step of the same LSTM, both
cores, with weight drop on the fused kernel (rnngen's way), without weight drop, and with
weight drop as a Python loop over time steps (what a weight drop that leaves the fused path
costs): the fused path must cost about the same with and without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"
RUNS = {
    "plain": ["--dropout", "0.3"],
    "awd": [
        "--locked-dropout", "--dropout-input", "0.4", "--dropout-hidden", "0.25",
        "--dropout-output", "0.4", "--embed-dropout", "0.1", "--weight-drop", "0.5",
        "--ar", "2", "--tar", "1", "--variable-bptt", "--average",
    ],
}  # fmt: skip


def log(message: str, started: float = time.time()) -> None:
    print(f"[{time.time() - started:6.0f}s] {message}", file=sys.stderr, flush=True)


def step_seconds(layers: int, hidden: int, precision: str, mode: str, repeats: int = 12) -> float:
    """Median seconds of one forward+backward of the LSTM stack on a (20, 70) batch."""
    from rnngen.config import ModelConfig
    from rnngen.hardware import autocast
    from rnngen.model import RNNLM, keep_mask

    torch.manual_seed(0)
    drop = 0.0 if mode == "none" else 0.5
    config = ModelConfig(vocab_size=64, layers=layers, hidden_size=hidden, embed_size=hidden,
                         dropout=0.0, weight_drop=drop)  # fmt: skip
    model = RNNLM(config).train()
    x = torch.randint(64, (20, 71))
    cpu = torch.device("cpu")

    def loop_forward(inputs: torch.Tensor) -> torch.Tensor:
        """The same stack as a Python loop over time steps with masked weights."""
        h = model._embed(inputs)  # (B, T, E)
        for layer in model.layers:
            w_ih, b_ih, b_hh = layer.weight_ih_l0, layer.bias_ih_l0, layer.bias_hh_l0
            w_hh = layer.weight_hh_l0 * keep_mask(layer.weight_hh_l0.shape, drop, w_ih)
            state = (h.new_zeros(h.shape[0], hidden), h.new_zeros(h.shape[0], hidden))
            steps = []
            for t in range(h.shape[1]):
                state = torch._VF.lstm_cell(h[:, t], state, w_ih, w_hh, b_ih, b_hh)
                steps.append(state[0])
            h = torch.stack(steps, 1)  # (B, T, H)
        return model.target_logprobs(h, x[:, 1:])

    def one() -> float:
        start = time.perf_counter()
        with autocast(cpu, precision):
            if mode == "loop":
                logp = loop_forward(x[:, :-1])
            else:
                logp, _, _ = model(x[:, :-1], targets=x[:, 1:])
        (-logp.mean()).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    one()
    return statistics.median(one() for _ in range(repeats))


def kernel_costs(layers: int, hidden: int, precision: str) -> dict:
    from rnngen.hardware import resolve_precision

    precision = resolve_precision(precision, torch.device("cpu"))
    seconds = {mode: step_seconds(layers, hidden, precision, mode)
               for mode in ("none", "fused", "loop")}  # fmt: skip
    figures = {f"{mode}_ms": round(1e3 * s, 1) for mode, s in seconds.items()}
    figures["fused_over_none"] = round(seconds["fused"] / seconds["none"], 2)
    figures["loop_over_fused"] = round(seconds["loop"] / seconds["fused"], 2)
    log(f"weight drop, one step: {figures}")
    return {"precision": precision, **figures}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=1200.0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--kind", default="word")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--skip-kernel", action="store_true")
    parser.add_argument(
        "--train-share", type=float, default=1.0,
        help="train on the first share of train.txt's lines: less text overfits sooner",
    )  # fmt: skip
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()
    out = {"budget": args.budget, "layers": args.layers, "hidden": args.hidden}
    if not args.skip_kernel:
        out["weight_drop_step"] = kernel_costs(args.layers, args.hidden, args.precision)
    if args.skip_runs:
        print(json.dumps(out), flush=True)
        return
    if not DATA.exists():
        log(f"skipped: {DATA} is absent")
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-awd-"))
    work.mkdir(parents=True, exist_ok=True)
    train = DATA / "train.txt"
    if args.train_share < 1.0:  # a temporary prefix of the lines; nothing is kept
        lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
        train = work / "train-part.txt"
        train.write_text("".join(lines[: int(len(lines) * args.train_share)]), encoding="utf-8")
        out["train_share"] = args.train_share
    cores = sorted(os.sched_getaffinity(0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = {}
    for i, (name, options) in enumerate(RUNS.items()):
        command = [
            "taskset", "-c", str(cores[i % len(cores)]), sys.executable, "-m", "rnngen",
            "train", str(train), "--valid", str(DATA / "valid.txt"), "--kind", args.kind,
            "--vocab-size", str(args.vocab_size), "--softmax", "adaptive", "--layers",
            str(args.layers), "--hidden", str(args.hidden), "--batch-size", "20", "--seq-len",
            "70", "--time-budget", str(args.budget), "--precision", args.precision,
            "-o", str(work / f"{name}.safetensors"), "--json", "--quiet", *options,
        ]  # fmt: skip
        log(" ".join(command))
        processes[name] = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    for name, process in processes.items():
        stdout, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{name} failed ({process.returncode})")
        summary = json.loads(stdout)
        records = [json.loads(line) for line in (work / f"{name}.metrics.jsonl").open()]
        steps = [r for r in records if r["event"] == "step"]
        evals = [r for r in records if r["event"] == "eval"]
        out[name] = {
            "steps": summary["steps"],
            "tokens_per_second": round(summary["tokens_per_second"] or 0),
            "best_valid_bpc": round(summary["best_valid_bpc"], 4),
            "last_train_loss": round(steps[-1]["loss"], 3),
            "curve_bpc": [round(r["valid_bpc"], 3) for r in evals],
        }
        log(f"{name}: {out[name]}")
    out["awd_minus_plain_bpc"] = round(
        out["awd"]["best_valid_bpc"] - out["plain"]["best_valid_bpc"], 4
    )
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
