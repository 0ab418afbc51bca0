"""The peer on the reference task: nanoGPT's CPU recipe for tinyshakespeare, run beside rnngen.

nanoGPT is not part of rnngen and none of its code is in this repository: give the path of a
checkout (for example one fetched for this measurement). This script writes nanoGPT's
expected data layout into a temporary copy of that checkout from the shared split
(train.txt + valid.txt is the original input.txt, split 90/10 as nanoGPT splits it), runs
nanoGPT's own prepare.py, then its README's CPU recipe exactly (4 layers, 4 heads, 128 wide,
block 64, batch 12, 2000 iterations, about 3 minutes), and prints one JSON line: the last
validation loss it reports (nats per character, an estimate over 20 batches), the same in
bits per character, and the wall time. `--taskset 0` pins it to one core, as
`benchmarks/bench_sizing_verify.sh` does for rnngen's one-core runs.

    python benchmarks/bench_nanogpt.py /path/to/nanoGPT [--taskset 0] [--python python3]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"
RECIPE = [
    "config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
    "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
    "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("nanogpt", type=Path)
    parser.add_argument("--taskset", help="CPU list to pin the run to, e.g. 0")
    parser.add_argument("--prepare-python", default="python3", help="has numpy and requests")
    options = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs {SHARED}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "nanogpt"
        shutil.copytree(options.nanogpt, work, ignore=shutil.ignore_patterns(".git"))
        data = work / "data" / "shakespeare_char"
        text = (SHARED / "train.txt").read_text() + (SHARED / "valid.txt").read_text()
        (data / "input.txt").write_text(text)
        subprocess.run([options.prepare_python, "prepare.py"], cwd=data, check=True,
                       capture_output=True)  # fmt: skip
        command = [sys.executable, "train.py", *RECIPE]
        if options.taskset:
            command = ["taskset", "-c", options.taskset, *command]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    evals = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", result.stdout)
    step, _, val = evals[-1]
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "peer": "nanoGPT CPU recipe (README), tinyshakespeare char",
                "taskset": options.taskset,
                "iterations": int(step),
                "val_loss_nats_per_char": float(val),
                "val_bpc": round(float(val) / math.log(2), 4),
                "wall_seconds": round(wall, 1),
                "val_curve": [float(v) for _, _, v in evals],
            }
        )
    )


if __name__ == "__main__":
    main()
