"""What `rnngen train --sample-every` costs; prints one JSON line of figures.

Trains the same model on tinyshakespeare (../shared) twice for a fixed number of steps, with
and without `--sample-every 1` (every evaluation, ten a run: the most it can cost), and
compares the wall time of the two runs. The samples' own time is in metrics.jsonl (each
`samples` record's seconds), which is the cost without the machine's noise between runs.
It checks that both runs saved bit-identical weights.

Figures: plain_s, sampled_s (wall seconds of each run, after a one-step run that fills the
token cache), samples_s (their sampling, summed), evaluations, per_evaluation_s, overhead
(samples_s / plain_s) and wall_ratio (sampled_s / plain_s, noisier on a shared machine).

    python benchmarks/bench_sample_every.py [--kind char|bpe] [--hidden 256] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from safetensors import safe_open

import rnngen

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"


def weights(path: str) -> dict:
    with safe_open(path, framework="pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", default="char")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    options = dict(valid=CORPUS / "valid.txt", kind=args.kind, hidden=args.hidden,
                   max_steps=args.steps, seed=1)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        # A first short run tokenizes the corpus into the cache, so that neither run below
        # pays for it.
        rnngen.train(CORPUS / "train.txt", output=Path(tmp) / "warm.safetensors",
                     **{**options, "max_steps": 1})  # fmt: skip
        seconds, runs = {}, {}
        for name, every in (("plain", 0), ("sampled", 1)):
            started = time.perf_counter()
            output = Path(tmp) / f"{name}.safetensors"
            runs[name] = rnngen.train(CORPUS / "train.txt", output=output, sample_every=every,
                                      **options)  # fmt: skip
            seconds[name] = time.perf_counter() - started
        lines = Path(tmp, "sampled.metrics.jsonl").read_text().splitlines()
        samples = [r for r in map(json.loads, lines) if r["event"] == "samples"]
        a, b = weights(runs["plain"].checkpoint), weights(runs["sampled"].checkpoint)
        identical = a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    spent = sum(r["seconds"] for r in samples)
    print(json.dumps({
        "kind": args.kind, "hidden": args.hidden, "steps": args.steps,
        "plain_s": round(seconds["plain"], 2), "sampled_s": round(seconds["sampled"], 2),
        "train_s": round(runs["plain"].seconds, 2), "evaluations": len(samples),
        "samples_s": round(spent, 2), "per_evaluation_s": round(spent / max(len(samples), 1), 3),
        "overhead": round(spent / seconds["plain"], 4),
        "wall_ratio": round(seconds["sampled"] / seconds["plain"], 3),
        "chars_per_evaluation": sum(len(s["text"]) for r in samples for s in r["samples"])
        // max(len(samples), 1),
        "identical_weights": identical, "machine": platform.machine(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
