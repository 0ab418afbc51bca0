"""The README's first command, measured: synth corpus, 40 s of training, eval against the
5-gram and the true entropy, agreement by distance.

Runs `rnngen synth -o corpus.txt && rnngen train corpus.txt --time-budget 40s [OPTIONS] &&
rnngen eval --json` in a temporary directory (the corpus is the default 1.5 M characters of
seed 0, as in the README) and prints one JSON line: the LSTM's, the 5-gram's and the oracle's
bits per character on the held-out split, the model the run chose, and wall times. Extra
arguments go to `rnngen train` (e.g. `--precision fp32`, `--size base`); `--taskset 0` pins
every command to one core (with fp32, a stand-in for a 2-core CPU without native bf16).

    python benchmarks/bench_first_run.py [--taskset 0] [--budget 40s] [TRAIN OPTIONS]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_flags() -> list[str]:
    text = Path("/proc/cpuinfo").read_text()
    return sorted(set(re.findall(r"\b(avx2|avx512_bf16|amx_bf16)\b", text)))


def rnngen(args: list[str], cwd: Path, pin: str | None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rnngen", *args]
    if pin:
        command = ["taskset", "-c", pin, *command]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taskset")
    parser.add_argument("--budget", default="40s")
    options, train_options = parser.parse_known_args()  # the rest goes to rnngen train
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        rnngen(["synth", "-o", "corpus.txt"], cwd, options.taskset)
        started = time.perf_counter()
        train = rnngen(
            ["train", "corpus.txt", "--time-budget", options.budget, "--json",
             *train_options], cwd, options.taskset,
        )  # fmt: skip
        train_wall = time.perf_counter() - started
        evaluation = json.loads(rnngen(["eval", "--json"], cwd, options.taskset).stdout)
    summary = json.loads(train.stdout)
    rows = {row["name"]: row for row in evaluation["rows"]}
    lstm = next(name for name in rows if name.split()[0] in ("lstm", "gru", "rnn"))
    size = re.search(r"size: (.*)", train.stderr)
    agreement = evaluation.get("agreement")
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "cpu_flags": cpu_flags(),
                "taskset": options.taskset,
                "budget": options.budget,
                "train_options": train_options,
                "model": lstm,
                "size_line": size.group(1) if size else None,
                "steps": summary["steps"],
                "lstm_bpc": round(rows[lstm]["bits_per_char"], 4),
                "ngram_bpc": round(rows["kneser-ney 5-gram"]["bits_per_char"], 4),
                "oracle_bpc": round(
                    next((r["bits_per_char"] for n, r in rows.items() if "oracle" in n), 0), 4
                ),
                "agreement": agreement,
                "train_wall_seconds": round(train_wall, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
