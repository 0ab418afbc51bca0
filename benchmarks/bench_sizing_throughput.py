"""Training throughput of every rung of the sizing ladder, per precision and thread count.

The other half of the sizing calibration (see bench_sizing_grid.py): how many tokens per
second each size trains at, on this CPU in bf16 and fp32 with 2 threads and 1 thread. Fewer
threads and fp32 stand in for slower machines (an AVX2-only 2-core CPU trains the 1x512
model at about this machine's fp32 one-thread speed). Uses the probe's own measurement
(rnngen.training.sizing.measure_rate) with longer timing, and takes the median of three. Prints one
JSON line per (precision, threads, size).

    python benchmarks/bench_sizing_throughput.py [--hidden 128,256,...] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

import torch

from rnngen.config import TrainConfig
from rnngen.hardware import cpu_has_native_bf16
from rnngen.training.sizing import LADDER, candidate_config, measure_rate

BATCH = TrainConfig().batch_size  # the default, as the probe measures it


def cpu_flags() -> list[str]:
    with open("/proc/cpuinfo") as f:
        text = f.read()
    return sorted(set(re.findall(r"\b(avx2|avx512_bf16|amx_bf16)\b", text)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", default=",".join(str(h) for layers, h in LADDER if layers == 1))
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--vocab", type=int, default=1024)
    options = parser.parse_args()
    precisions = ["bf16", "fp32"] if cpu_has_native_bf16() else ["fp32"]
    for precision in precisions:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            for hidden in map(int, options.hidden.split(",")):
                config = candidate_config(1, hidden, options.vocab)
                rates = [
                    measure_rate(
                        config, BATCH, 64, torch.device("cpu"), precision,
                        min_seconds=options.seconds, max_steps=50,
                    )
                    for _ in range(3)
                ]  # fmt: skip
                record = {
                    "date": time.strftime("%Y-%m-%d"),
                    "cpu_flags": cpu_flags(),
                    "precision": precision,
                    "threads": threads,
                    "layers": 1,
                    "hidden": hidden,
                    "tokens_per_second": round(statistics.median(rates)),
                    "spread": [round(r) for r in sorted(rates)],
                }
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
