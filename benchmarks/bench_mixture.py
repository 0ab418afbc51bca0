"""The RNN + n-gram mixture and dynamic evaluation, on tinyshakespeare and the built-in corpus.

    python benchmarks/bench_mixture.py [--fp32-one-core] [--budget SECONDS] [--skip-synth]
                                       [--keep DIR]

1. tinyshakespeare (../shared): `rnngen train train.txt --valid valid.txt --time-budget 180`
   with defaults, then `rnngen eval --json`: the LSTM, the 5-gram and their mixture on
   valid.txt, with λ fit by EM on valid.txt itself (the checkpoint has no test split; eval
   flags that). A fair variant fits λ on the first half of valid.txt and scores the second.
   `--fp32-one-core` emulates a 2-core CPU without bf16 (fp32, pinned to one core: the
   throughput an AVX2-only 2-core machine measured, see BENCHMARKS.md).
2. Dynamic evaluation on the same model: learning rate and segment length tuned on the first
   20k tokens of valid.txt, then the full valid.txt with the best: gain in bits/char, cost in
   seconds per 100k tokens, and with the mixture.
3. The built-in corpus (generated, 2 M characters; `--skip-synth` leaves it out): 60 s of
   training, then `rnngen eval --dynamic --json`: the mixture against the oracle, and
   agreement accuracy by distance for the RNN, the n-gram and the mixture.

Prints one JSON line of figures; progress on stderr. `--keep DIR` keeps the checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rnngen
from rnngen.scoring.baseline import CheckpointData
from rnngen.scoring.dynamic import DynamicConfig, dynamic_logprobs
from rnngen.scoring.logprobs import model_logprobs
from rnngen.scoring.mixture import fit_weight, mix_logprobs
from rnngen.scoring.trained_on import with_context

DATA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"
TUNING_TOKENS = 20_000
GRID = [(lr, segment) for lr in (0.03, 0.1, 0.3, 1.0) for segment in (8, 16, 32)]


def log(message: str, started: float = time.time()) -> None:
    print(f"[{time.time() - started:6.0f}s] {message}", file=sys.stderr, flush=True)


def rnngen_cli(*args: str, one_core: bool = False) -> str:
    command = [sys.executable, "-m", "rnngen", *args]
    if one_core:
        command = ["taskset", "-c", "0", *command]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return result.stdout


def rows_of(report: dict) -> dict:
    return {row["name"]: round(row["bits_per_char"], 4) for row in report["rows"]}


def bits_per_char(logp: np.ndarray, chars: int) -> float:
    return float(-logp.sum() / math.log(2) / chars)


def tinyshakespeare(tmp: Path, budget: str, one_core: bool) -> dict:
    checkpoint = tmp / "ts.safetensors"
    extra = ["--precision", "fp32"] if one_core else []  # one core: threads follow affinity
    started = time.perf_counter()
    rnngen_cli("train", str(DATA / "train.txt"), "--valid", str(DATA / "valid.txt"),
               "--time-budget", budget, "-o", str(checkpoint), "-q", *extra,
               one_core=one_core)  # fmt: skip
    log(f"tinyshakespeare trained in {time.perf_counter() - started:.0f}s")
    report = json.loads(rnngen_cli("eval", str(checkpoint), "--json", "-q"))
    log(f"eval: {rows_of(report)}")
    lm = rnngen.load(checkpoint, device="cpu")
    figures = {"model": report["rows"][0]["name"], "valid": rows_of(report),
               "lambda": round(report["mixture"]["lambda"], 4),
               "scored_on_fit_text": report["mixture"]["scored_on_fit_text"]}  # fmt: skip
    text = (DATA / "valid.txt").read_text()
    ids = with_context(lm.tokenizer, lm.tokenizer.encode_array(text))  # (1 + T,)
    started = time.perf_counter()
    rnn = model_logprobs(lm.model, ids, lm.device)  # (T,)
    static_seconds = time.perf_counter() - started
    ngram_model = CheckpointData(lm.provenance, lm.tokenizer).ngram(5).model
    ngram = ngram_model.logprobs(ids)  # (T,)
    half = len(rnn) // 2
    second_chars = len(lm.tokenizer.decode(ids[1 + half :]))
    fit = fit_weight(rnn[:half], ngram[:half])
    figures["fair"] = {
        "lambda_first_half": round(fit.weight, 4),
        "second_half_chars": second_chars,
        "lstm": round(bits_per_char(rnn[half:], second_chars), 4),
        "5-gram": round(bits_per_char(ngram[half:], second_chars), 4),
        "mixture": round(
            bits_per_char(mix_logprobs(rnn[half:], ngram[half:], fit.weight), second_chars), 4
        ),  # fmt: skip
    }
    # A weight per n-gram context order (how long a context the n-gram knows; it depends on
    # the context only, so the mixture stays normalized), fit on the first half as well.
    orders = ngram_model.context_orders(ids)  # (T,)
    mixed = np.empty(len(rnn) - half)
    weights = {}
    for order in np.unique(orders):
        fit_part, scored = orders[:half] == order, orders[half:] == order
        weight = fit_weight(rnn[:half][fit_part], ngram[:half][fit_part]).weight
        weights[int(order)] = round(weight, 3)
        mixed[scored] = mix_logprobs(rnn[half:][scored], ngram[half:][scored], weight)
    figures["fair"]["mixture_weight_per_context_order"] = weights
    figures["fair"]["mixture_per_context_order"] = round(bits_per_char(mixed, second_chars), 4)
    log(f"fair variant: {figures['fair']}")
    figures["dynamic"] = dynamic(lm, ids, rnn, ngram, len(text), report["mixture"]["lambda"])
    figures["dynamic"]["static_seconds_per_100k_tokens"] = round(static_seconds / len(rnn) * 1e5, 1)
    return figures


def dynamic(lm, ids, rnn, ngram, chars: int, weight: float) -> dict:
    """Tune on the first TUNING_TOKENS of valid.txt, then score all of it with the best."""
    tuning = ids[: TUNING_TOKENS + 1]
    tuning_chars = len(lm.tokenizer.decode(tuning[1:]))
    static = bits_per_char(rnn[:TUNING_TOKENS], tuning_chars)
    grid = {}
    for lr, segment in GRID:
        config = DynamicConfig(learning_rate=lr, segment=segment)
        logp = dynamic_logprobs(lm.model, tuning, lm.device, config)
        grid[f"lr {lr}, segment {segment}"] = round(bits_per_char(logp, tuning_chars), 4)
        log(f"dynamic lr {lr} segment {segment}: {grid[f'lr {lr}, segment {segment}']}")
    best = min(GRID, key=lambda g: grid[f"lr {g[0]}, segment {g[1]}"])
    config = DynamicConfig(learning_rate=best[0], segment=best[1])
    started = time.perf_counter()
    logp = dynamic_logprobs(lm.model, ids, lm.device, config)
    seconds = time.perf_counter() - started
    return {
        "tuning_static": round(static, 4), "tuning_grid": grid,
        "best": {"learning_rate": best[0], "segment": best[1]},
        "static": round(bits_per_char(rnn, chars), 4),
        "dynamic": round(bits_per_char(logp, chars), 4),
        "dynamic_plus_5gram": round(bits_per_char(mix_logprobs(logp, ngram, weight), chars), 4),
        "seconds_per_100k_tokens": round(seconds / len(logp) * 1e5, 1),
    }  # fmt: skip


def synth(tmp: Path) -> dict:
    corpus = tmp / "synth.txt"
    rnngen_cli("synth", "-o", str(corpus), "--size", "2M", "-q")
    checkpoint = tmp / "synth.safetensors"
    rnngen_cli("train", str(corpus), "--time-budget", "60", "-o", str(checkpoint), "-q")
    started = time.perf_counter()
    report = json.loads(rnngen_cli("eval", str(checkpoint), "--dynamic", "--json", "-q"))
    log(f"synth eval with --dynamic in {time.perf_counter() - started:.0f}s: {rows_of(report)}")
    accuracy = {name: {bucket: round(v, 3) for bucket, v in buckets.items()}
                for name, buckets in report["agreement"]["accuracy"].items()}  # fmt: skip
    return {"rows": rows_of(report), "lambda": round(report["mixture"]["lambda"], 4),
            "agreement": accuracy, "agreement_items": report["agreement"]["items"]}  # fmt: skip


def main() -> None:
    args = sys.argv[1:]
    one_core = "--fp32-one-core" in args
    budget = args[args.index("--budget") + 1] if "--budget" in args else "180"
    flags = subprocess.run("grep -owE 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u",
                           shell=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    figures = {"date": time.strftime("%Y-%m-%d"), "cpu_flags": flags, "budget_s": float(budget),
               "emulated_fp32_one_core": one_core, "threads": torch.get_num_threads(),
               "load_before": round(os.getloadavg()[0], 2)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if "--keep" in args:
            tmp = args[args.index("--keep") + 1]
            Path(tmp).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("RNNGEN_CACHE", str(Path(tmp) / "cache"))
        if DATA.is_dir():
            figures["tinyshakespeare"] = tinyshakespeare(Path(tmp), budget, one_core)
        else:
            log(f"{DATA} absent: tinyshakespeare skipped")
        if "--skip-synth" not in args:
            figures["synth"] = synth(Path(tmp))
    figures["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
