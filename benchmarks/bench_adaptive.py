"""The adaptive softmax against the full one: throughput by vocabulary size, and a real run.

    python benchmarks/bench_adaptive.py [--precision auto|fp32] [--budget SECONDS]
                                        [--skip-sweep] [--skip-run]

1. Sweep: training tokens/s of word_language_model's default shape (2x200 LSTM, embed 200,
   batch 20, seq-len 35, tied) with each softmax, at vocabularies from 1k to 32k. Targets
   follow Zipf's law, as text does (the adaptive softmax's cost depends on how often a
   target falls in a tail cluster), and the cut-offs are rnngen's choice for them. The
   vocabulary where the ratio passes 1 sets `--softmax auto` (ADAPTIVE_FROM_VOCAB).
2. Run (needs ../shared): `rnngen train` on tinyshakespeare with `--kind word --vocab-size
   8000` and the same shape, once per softmax, each for the same time budget: tokens/s and
   the best validation bits/char at equal wall time. The two runs go one after the other,
   each with the whole machine.

`--precision fp32` with `taskset -c 0` emulates a CPU without bf16. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnngen.adaptive import choose_cutoffs, frequency_order
from rnngen.config import ModelConfig
from rnngen.hardware import autocast, fused_adam, resolve_precision
from rnngen.model import RNNLM

DATA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"
SHAPE = dict(layers=2, hidden_size=200, embed_size=200)
BATCH, SEQ_LEN = 20, 35
VOCABS = (1024, 2048, 4096, 8192, 16384, 32768)


def log(message: str, started: float = time.time()) -> None:
    print(f"[{time.time() - started:6.0f}s] {message}", file=sys.stderr, flush=True)


def tokens_per_second(vocab: int, softmax: str, precision: str, seconds: float) -> float:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    zipf = 1.0 / np.arange(1, vocab + 1)
    ids = rng.choice(vocab, size=200_000, p=zipf / zipf.sum())  # a Zipfian "text"
    cutoffs = choose_cutoffs(ids, vocab, SHAPE["embed_size"]) if softmax == "adaptive" else ()
    config = ModelConfig(vocab_size=vocab, softmax=softmax, cutoffs=cutoffs, **SHAPE)
    model = RNNLM(config)
    if model.adaptive is not None:
        model.adaptive.set_order(frequency_order(ids, vocab))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, fused=fused_adam(torch.device("cpu"))
    )
    windows = torch.from_numpy(ids[: (len(ids) // (BATCH * (SEQ_LEN + 1))) * BATCH * (SEQ_LEN + 1)])
    windows = windows.reshape(-1, BATCH, SEQ_LEN + 1)  # (W, B, T+1)
    cpu = torch.device("cpu")

    def step(i: int) -> None:
        batch = windows[i % len(windows)]
        with autocast(cpu, precision):
            logp, _, _ = model(batch[:, :-1], targets=batch[:, 1:])  # (B, T)
        loss = -logp.mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step(0)
    rates, i = [], 1
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        step(i)
        rates.append(BATCH * SEQ_LEN / (time.perf_counter() - start))
        i += 1
    return statistics.median(rates)


def sweep(precision: str, seconds: float) -> list[dict]:
    rows = []
    for vocab in VOCABS:
        full = tokens_per_second(vocab, "full", precision, seconds)
        adaptive = tokens_per_second(vocab, "adaptive", precision, seconds)
        rows.append({"vocab": vocab, "full_tps": round(full), "adaptive_tps": round(adaptive),
                     "speedup": round(adaptive / full, 2)})  # fmt: skip
        log(f"vocab {vocab}: full {full:.0f} tok/s, adaptive {adaptive:.0f} tok/s")
    return rows


def real_run(precision: str, budget: float, work: Path) -> dict:
    figures = {}
    for softmax in ("full", "adaptive"):
        command = [
            sys.executable, "-m", "rnngen", "train", str(DATA / "train.txt"), "--valid",
            str(DATA / "valid.txt"), "--kind", "word", "--vocab-size", "8000", "--layers", "2",
            "--hidden", "200", "--embed", "200", "--batch-size", str(BATCH), "--seq-len",
            str(SEQ_LEN), "--dropout", "0.2", "--softmax", softmax, "--time-budget",
            str(budget), "--precision", precision, "-o", str(work / f"{softmax}.safetensors"),
            "--json", "--quiet",
        ]  # fmt: skip
        log(" ".join(command[2:]))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(result.stderr)
        summary = json.loads(result.stdout)
        evals = [json.loads(line) for line in (work / f"{softmax}.metrics.jsonl").open()]
        steps = [e["tokens_per_second"] for e in evals if e["event"] == "step"]
        figures[softmax] = {
            "steps": summary["steps"],
            "tokens_per_second": round(statistics.median(steps)),
            "best_valid_bpc": round(summary["best_valid_bpc"], 4),
            "curve": [(e["step"], round(e["valid_bpc"], 4)) for e in evals if e["event"] == "eval"],
        }
        log(f"{softmax}: {figures[softmax]}")
    figures["speedup"] = round(
        figures["adaptive"]["tokens_per_second"] / figures["full"]["tokens_per_second"], 2
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--budget", type=float, default=180.0)
    parser.add_argument("--sweep-seconds", type=float, default=6.0)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    precision = resolve_precision(args.precision, torch.device("cpu"))
    out = {"precision": precision, "threads": torch.get_num_threads()}
    if not args.skip_sweep:
        out["sweep"] = sweep(precision, args.sweep_seconds)
    if not args.skip_run:
        if not DATA.exists():
            log(f"skipping the tinyshakespeare run: {DATA} is absent")
        else:
            with tempfile.TemporaryDirectory() as work:
                out["tinyshakespeare_word_8000"] = real_run(args.precision, args.budget, Path(work))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
