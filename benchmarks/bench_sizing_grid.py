"""Calibration grid for automatic model sizing: validation bits/char by model size and length.

How good a model gets depends on its size and on how many tokens it trains on, not on how fast
the machine is: a machine's speed only decides how many tokens fit in a time budget. So the
grid is run in steps (`--max-steps N`, the schedule laid over exactly N steps, as a time
budget lays it over the seconds), which makes every point independent of the machine and of
anything else running on it. `bench_sizing_throughput.py` measures the other half (tokens/s of
each size per device, precision and thread count), and `bench_sizing_fit.py` combines both:
for every budget and machine speed it finds the best fixed size, and the rule's choice.

Prints one JSON line per run (corpus, layers, hidden, steps, tokens, parameters, best bpc).

    python benchmarks/bench_sizing_grid.py [--corpus tinyshakespeare|synth|small] \
        [--hidden 128,256,...] [--steps 100,250,...] [--precision bf16] [--final-only]
    python benchmarks/bench_sizing_grid.py --points 128:300,512:1000 ...

`--final-only` evaluates once, at the end (with a cosine schedule the last evaluation is the
best one), which halves the cost of short runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora" / "tinyshakespeare"


def corpus_files(name: str, tmp: Path) -> list[str]:
    """The training file and its --valid option for a named corpus."""
    if name in ("tinyshakespeare", "small"):
        if not SHARED.is_dir():
            raise SystemExit(f"needs {SHARED}")
        train = SHARED / "train.txt"
        if name == "small":  # the first 100k characters: a corpus a big model overfits
            train = tmp / "small.txt"
            text = (SHARED / "train.txt").read_text()[:100_000]
            train.write_text(text[: text.rindex("\n") + 1])
        return [str(train), "--valid", str(SHARED / "valid.txt")]
    synth = ROOT / "corpora" / "synth.txt"
    if not synth.exists():
        subprocess.run([sys.executable, "-m", "rnngen", "synth", "-o", str(synth)], check=True)
    return [str(synth)]


def run(files: list[str], layers: int, hidden: int, steps: int, extra: list[str], tmp: Path):
    out = tmp / f"grid-{layers}x{hidden}-{steps}.safetensors"
    cmd = [
        sys.executable, "-m", "rnngen", "train", *files, "-o", str(out), "--force", "-q",
        "--json", "--layers", str(layers), "--hidden", str(hidden), "--embed", str(hidden),
        "--max-steps", str(steps), "--epochs", "1000", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    summary = json.loads(result.stdout)
    header = json.loads(out.read_bytes()[8 : 8 + int.from_bytes(out.read_bytes()[:8], "little")])
    parameters = sum(_numel(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return summary, parameters, time.perf_counter() - started


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="tinyshakespeare")
    parser.add_argument("--hidden", default="128,256,384,512,768")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--steps", default="100,250,600,1500")
    parser.add_argument("--points", help="HIDDEN:STEPS,... instead of the full grid")
    parser.add_argument("--final-only", action="store_true")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("extra", nargs="*")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = corpus_files(options.corpus, Path(tmp))
        points = [
            (int(h), int(s)) for s in options.steps.split(",") for h in options.hidden.split(",")
        ]
        if options.points:
            points = [tuple(map(int, p.split(":"))) for p in options.points.split(",")]
        for hidden, steps in points:
            extra = ["--precision", options.precision, *options.extra]
            if options.final_only:
                extra += ["--eval-every", str(steps)]
            summary, parameters, wall = run(files, options.layers, hidden, steps, extra, Path(tmp))
            record = {
                "date": time.strftime("%Y-%m-%d"),
                "corpus": options.corpus,
                "layers": options.layers,
                "hidden": hidden,
                "steps": summary["steps"],
                "parameters": parameters,
                "best_valid_bpc": round(summary["best_valid_bpc"], 4),
                "wall_seconds": round(wall, 1),
                "options": extra,
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
