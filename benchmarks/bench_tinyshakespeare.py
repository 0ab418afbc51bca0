"""The reference task: tinyshakespeare, 180 s of training, default settings, 2 CPU cores.

Runs exactly `rnngen train ../shared/corpora/tinyshakespeare/train.txt --valid
../shared/corpora/tinyshakespeare/valid.txt --time-budget 180` (plus -o into a temporary
directory and --json) and prints one JSON line with the best validation bits per character,
the wall time of the whole command, and the training throughput. Target: <= 2.09 bits per
character (1.45 nats), which nanoGPT reaches on an A100 in about 3 minutes; nanoGPT's CPU
recipe reaches 2.72 bits per character in 186 s on this machine.

    python benchmarks/bench_tinyshakespeare.py [extra rnngen train options]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"


def main() -> None:
    if not DATA.is_dir():
        raise SystemExit(f"needs {DATA} (the shared tinyshakespeare split)")
    budget = "180"
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ts.safetensors"
        cmd = [
            sys.executable,
            "-m",
            "rnngen",
            "train",
            str(DATA / "train.txt"),
            "--valid",
            str(DATA / "valid.txt"),
            "--time-budget",
            budget,
            "-o",
            str(out),
            "--json",
            *extra,
        ]
        started = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(result.stderr)
        summary = json.loads(result.stdout)
        evals = [
            json.loads(line) for line in out.with_name("ts.metrics.jsonl").read_text().splitlines()
        ]
        evals = [e for e in evals if e["event"] == "eval"]
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "cpu_flags": sorted(
                    set(
                        re.findall(
                            r"\b(avx2|avx512_bf16|amx_bf16)\b", Path("/proc/cpuinfo").read_text()
                        )
                    )
                ),
                "options": extra,
                "model": (re.search(r"model: (.*)", result.stderr) or [None, None])[1],
                "size_line": (re.search(r"size: (.*)", result.stderr) or [None, None])[1],
                "best_valid_bpc": round(summary["best_valid_bpc"], 4),
                "best_valid_nats_per_char": round(
                    summary["best_valid_bpc"] * 0.6931471805599453, 4
                ),
                "target_bpc": 2.09,
                "train_seconds": summary["train_seconds"],
                "wall_seconds": round(wall, 1),
                "steps": summary["steps"],
                "tokens_per_second": round(summary["tokens_per_second"] or 0),
                "valid_bpc_curve": [round(e["valid_bpc"], 3) for e in evals],
            }
        )
    )


if __name__ == "__main__":
    main()
