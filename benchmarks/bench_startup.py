"""How fast the CLI starts: `rnngen --help` never imports torch, so shells stay quick.

Prints one JSON line: the median wall time of `rnngen --help` and `rnngen train --help`, and,
for scale, of a bare `python -c "import torch"`, over several runs each.

    python benchmarks/bench_startup.py [runs]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    python = sys.executable
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"),
        "rnngen_help_s": median_seconds([python, "-m", "rnngen", "--help"], runs),
        "rnngen_train_help_s": median_seconds([python, "-m", "rnngen", "train", "--help"], runs),
        "import_torch_s": median_seconds([python, "-c", "import torch"], runs),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
