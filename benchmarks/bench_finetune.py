"""Fine-tuning against training from scratch, at the same short budget; prints one JSON line.

    python benchmarks/bench_finetune.py [--base-seconds 300] [--finetune-seconds 60]
                                        [--target synth|tail] [--finetune-lr LR]

1. A base model: `rnngen train` on tinyshakespeare for --base-seconds (its size chosen by
   measuring this machine, as by default). With --target synth it trains on all of
   train.txt (valid.txt held out); with --target tail on the first 80% of train.txt's
   lines only, so that the rest is text it never saw.
2. The target corpus: `rnngen synth` text (--target synth: another domain, modern English
   prose with agreement and recall, the Shakespeare tokenizer applied to it) or the last 20%
   of train.txt's lines, validated on valid.txt (--target tail: more of the same domain).
3. (a) `--init-from` the base on the target for --finetune-seconds, and (b) a model of the
   base's architecture from scratch on the target, with a tokenizer of the base's kind and
   vocabulary size trained on the target, for the same seconds.

It reports both best validation bits per character (comparable across the two tokenizers)
and their ratio (fine-tuned / scratch: below 1 means the base's head start helped), with
each run's steps and validation curve. Everything is written to a temporary directory (the
token cache too); nothing of ../shared is copied. Without ../shared it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare"
REPO = Path(__file__).resolve().parents[1]


def rnngen(*args, env: dict) -> subprocess.CompletedProcess:
    """One `rnngen` command, as a user runs it; a failure ends the benchmark with its error."""
    command = [sys.executable, "-m", "rnngen", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return result


def train(corpus: Path, out: Path, options: list, env: dict) -> dict:
    """A training run's JSON summary, its checkpoint's metadata and its validation curve."""
    started = time.perf_counter()
    result = rnngen("train", corpus, "-o", out, "--json", *options, env=env)
    wall = time.perf_counter() - started
    summary = json.loads(result.stdout)
    info = json.loads(rnngen("info", out, "--json", env=env).stdout)
    metrics = out.with_name(out.name.replace(".safetensors", ".metrics.jsonl"))
    evals = [json.loads(line) for line in metrics.read_text().splitlines()]
    curve = [round(e["valid_bpc"], 4) for e in evals if e["event"] == "eval"]
    return {"summary": summary, "info": info, "curve": curve, "wall": wall}


def figures(run: dict) -> dict:
    model = run["info"]["model_config"]
    return {
        "best_valid_bpc": round(run["summary"]["best_valid_bpc"], 4),
        "steps": run["summary"]["steps"],
        "train_seconds": run["summary"]["train_seconds"],
        "wall_seconds": round(run["wall"], 1),
        "model": f"{model['layers']}x{model['cell']} {model['hidden_size']}",
        "tokenizer": f"{run['info']['tokenizer_kind']} {model['vocab_size']}",
        "valid_bpc_curve": run["curve"],
    }


def architecture_options(model: dict) -> list[str]:
    """The options that build the base's architecture from scratch."""
    options = ["--cell", model["cell"], "--layers", model["layers"]]
    options += ["--hidden", model["hidden_size"], "--embed", model["embed_size"]]
    options += ["--tie" if model["tie"] else "--no-tie"]
    return options + ["--residual" if model["residual"] else "--no-residual"]


def split_lines(source: Path, head: Path, tail: Path, share: float) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = int(len(lines) * share)
    head.write_text("".join(lines[:cut]), encoding="utf-8")
    tail.write_text("".join(lines[cut:]), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-seconds", type=float, default=300)
    parser.add_argument("--finetune-seconds", type=float, default=60)
    parser.add_argument("--target", choices=("synth", "tail"), default="synth")
    parser.add_argument("--synth-chars", default="300k", help="size of the synth target")
    parser.add_argument("--finetune-lr", type=float, default=None,
                        help="peak learning rate of the fine-tune [default: rnngen's]")  # fmt: skip
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: needs {DATA} (the shared tinyshakespeare split)", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "RNNGEN_CACHE": str(tmp / "cache"), "NO_COLOR": "1",
               "PYTHONPATH": os.pathsep.join(path)}  # fmt: skip
        if args.target == "tail":
            base_corpus, target = tmp / "head.txt", tmp / "tail.txt"
            split_lines(DATA / "train.txt", base_corpus, target, 0.8)
            base_options: list = []  # its own held-out lines: valid.txt is the target's
            target_options = ["--valid", DATA / "valid.txt"]
        else:
            base_corpus, target = DATA / "train.txt", tmp / "synth.txt"
            rnngen("synth", "-o", target, "--size", args.synth_chars, "--seed", 1, "-q", env=env)
            base_options = ["--valid", DATA / "valid.txt"]
            target_options = []
        base = train(base_corpus, tmp / "base.safetensors",
                     [*base_options, "--time-budget", args.base_seconds], env)  # fmt: skip
        model = base["info"]["model_config"]
        budget = [*target_options, "--time-budget", args.finetune_seconds]
        lr = ["--lr", args.finetune_lr] if args.finetune_lr is not None else []
        tuned = train(target, tmp / "finetuned.safetensors",
                      [*budget, *lr, "--init-from", tmp / "base.safetensors"], env)  # fmt: skip
        kind = ["--kind", base["info"]["tokenizer_kind"], "--vocab-size", model["vocab_size"]]
        scratch = train(target, tmp / "scratch.safetensors",
                        [*budget, *kind, *architecture_options(model)], env)  # fmt: skip
    tuned_bpc = tuned["summary"]["best_valid_bpc"]
    scratch_bpc = scratch["summary"]["best_valid_bpc"]
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "target": args.target,
                "base_seconds": args.base_seconds,
                "finetune_seconds": args.finetune_seconds,
                "finetune_lr": args.finetune_lr,
                "base": figures(base),
                "finetuned": figures(tuned),
                "scratch": figures(scratch),
                "finetuned_over_scratch_bpc": round(tuned_bpc / scratch_bpc, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
