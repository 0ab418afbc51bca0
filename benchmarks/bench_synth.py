"""Speed and figures of the synthetic corpus (rnngen/synth/); prints one JSON line.

    python benchmarks/bench_synth.py [--chars N] [--seed S]

Generates the default-size corpus to a temporary file (how `rnngen synth` runs), reads it back
and analyses every line (how eval scores the floor), and reports: MB/s of each, the true
entropy in bits per character, a character-unigram entropy for scale, and the share of
agreement items in each distance bucket.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rnngen import synth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=synth.DEFAULT_CHARS)
    parser.add_argument("--seed", type=int, default=synth.DEFAULT_SEED)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "synth.txt")
        start = time.perf_counter()
        summary = synth.generate_corpus(path, n_chars=args.chars, seed=args.seed)
        generate_s = time.perf_counter() - start
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()

    start = time.perf_counter()
    result = synth.oracle(text.splitlines(keepends=True))
    analyse_s = time.perf_counter() - start

    buckets = collections.Counter(synth.bucket_of(item.distance) for _, item in result.items)
    char_counts = collections.Counter(text)
    unigram_bits = -sum(n / len(text) * math.log2(n / len(text)) for n in char_counts.values())
    words = {word.strip(".,") for word in text.split()}
    megabytes = summary.bytes / 1e6
    print(
        json.dumps(
            {
                "benchmark": "synth",
                "seed": args.seed,
                "chars": summary.chars,
                "lines": summary.lines,
                "vocabulary": len(words),
                "generate_mb_per_s": round(megabytes / generate_s, 2),
                "analyse_mb_per_s": round(megabytes / analyse_s, 2),
                "generate_s": round(generate_s, 3),
                "analyse_s": round(analyse_s, 3),
                "bits_per_char": round(result.bits_per_char, 4),
                "bits_per_char_at_generation": round(summary.bits_per_char, 4),
                "char_unigram_bits_per_char": round(unigram_bits, 4),
                "skipped_lines": result.skipped_lines,
                "items": len(result.items),
                "bucket_share": {
                    label: round(buckets[label] / len(result.items), 4)
                    for label in synth.BUCKET_LABELS
                },
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
