"""Tokenize throughput and memory, end to end through the CLI.

Prints one JSON line: for each corpus and tokenizer kind, wall seconds, MB/s (corpus bytes /
wall time of the whole `rnngen tokenize` process, torch-free start-up and tokenizer training
included) and the peak RSS of the process. The large corpus is generated with `rnngen synth`
(200 MB by default; set BENCH_TOKENIZE_MB to change it), so the benchmark needs no download.

    python benchmarks/bench_tokenize.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"


def run_tokenize(corpus: Path, out: Path, *options: str) -> dict:
    """Run one `rnngen tokenize` in a child process; its peak RSS is measured in isolation."""
    code = (
        "import resource, subprocess, sys, json, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(json.dumps({'rc': r.returncode, 'seconds': time.perf_counter() - t,\n"
        "  'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
    )
    cmd = [sys.executable, "-m", "rnngen", "tokenize", str(corpus), "-o", str(out), "-q", *options]
    result = json.loads(
        subprocess.run(
            [sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True
        ).stdout
    )
    size_mb = corpus.stat().st_size / 1e6
    if result["rc"] != 0:
        raise SystemExit(f"rnngen tokenize failed on {corpus}")
    return {
        "mb": round(size_mb, 1),
        "seconds": round(result["seconds"], 2),
        "mb_per_s": round(size_mb / result["seconds"], 2),
        "peak_rss_mb": round(result["peak_rss_mb"]),
    }


def main() -> None:
    big_mb = float(os.environ.get("BENCH_TOKENIZE_MB", "200"))
    figures: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if SHARED.is_dir():
            for kind in ("char", "bpe", "unigram", "word"):
                options = ["--kind", kind] + (["--vocab-size", "8000"] if kind == "word" else [])
                figures[f"tinyshakespeare_{kind}"] = run_tokenize(
                    SHARED / "train.txt", tmp / kind, *options
                )
        big = tmp / "big.txt"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rnngen", "synth", "-o", str(big), "--size", f"{big_mb}M", "-q"],
            check=True,
        )
        figures["synth_generate_seconds"] = round(time.perf_counter() - started, 1)
        figures[f"synth_{big_mb:g}mb_bpe"] = run_tokenize(big, tmp / "big-bpe", "--kind", "bpe")
        figures[f"synth_{big_mb:g}mb_char"] = run_tokenize(big, tmp / "big-char", "--kind", "char")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
