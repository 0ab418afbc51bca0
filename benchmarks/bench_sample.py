"""`rnngen sample` speed; prints one JSON line of figures.

The model is `rnngen train --size base` (rnngen.config.ModelConfig's defaults: 1 x LSTM 512, tied
embeddings) with random weights: speed does not depend on training. Its tokenizer is the
default one (bpe, up to 1024 pieces) trained on text from `rnngen synth`. So that samples have
the token lengths of real text, the output bias is set to the log unigram frequencies of that
text and the embedding is scaled down (the random LSTM then barely moves the logits): chars/s
is then what a trained model gives, within its chars/token.

Figures:
- first_char_s: cold start, from launching `python -m rnngen sample CHECKPOINT` (importing
  torch, loading the checkpoint) to the first sampled character on its stdout; median of 3.
- {one,batch16}_{tokens,chars}_per_s: generation alone (checkpoint loaded), from the first
  event to the last, with `rnngen.sampling.sampler.generate` and the command's default of one
  thread;
  chars counts the characters of all samples; median of 3. bf16_*: with bf16 weights (what
  `--precision auto` picks on CPUs with native bf16), the others fp32. threads2_*: bf16 with
  two threads (`--threads 2`).
- chars_per_token: of the samples (compare corpus_chars_per_token).

    python benchmarks/bench_sample.py [--tokens N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnngen.checkpoint import load_model, save_model
from rnngen.config import ModelConfig, TokenizerConfig
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.model import RNNLM
from rnngen.sampling.generate import Piece, SampleConfig
from rnngen.sampling.sampler import generate
from rnngen.synth import generate_lines

REPEATS = 3


def build_checkpoint(path: Path) -> float:
    """Write the benchmark checkpoint; return the corpus's characters per token."""
    lines = list(generate_lines(3000, seed=0))
    tokenizer = train_tokenizer(lines, TokenizerConfig())
    text = "\n".join(lines) + "\n"
    ids = tokenizer.encode_array(text)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size))
    counts = np.bincount(ids, minlength=tokenizer.vocab_size) + 0.01
    with torch.no_grad():
        model.output_bias.copy_(torch.from_numpy(np.log(counts / counts.sum())))
        model.embedding.weight.mul_(0.02)
    save_model(path, model, tokenizer, {})
    return len(text) / len(ids)


def first_char_seconds(path: Path) -> float:
    command = [sys.executable, "-m", "rnngen", "sample", str(path), "--length", "200", "-q"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    process.stdout.read(1)
    elapsed = time.perf_counter() - start
    process.stdout.close()
    process.wait()
    return elapsed


def throughput(model, tokenizer, samples: int, tokens: int, precision: str) -> dict:
    config = SampleConfig(max_tokens=tokens, num_samples=samples, seed=1)
    list(generate(model, tokenizer, "", SampleConfig(max_tokens=20), precision=precision))
    runs = []
    for _ in range(REPEATS):
        chars, start = 0, time.perf_counter()
        for event in generate(model, tokenizer, "", config, precision=precision):
            if isinstance(event, Piece):
                chars += len(event.text)
        runs.append((time.perf_counter() - start, chars))
    elapsed, chars = sorted(runs)[len(runs) // 2]  # the median run
    return {
        "tokens_per_s": samples * tokens / elapsed,
        "chars_per_s": chars / elapsed,
        "chars_per_token": chars / (samples * tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per sample")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.safetensors"
        corpus_chars_per_token = build_checkpoint(path)
        figures = {
            "first_char_s": statistics.median(first_char_seconds(path) for _ in range(3)),
            "corpus_chars_per_token": corpus_chars_per_token,
        }
        model, tokenizer, _ = load_model(path)
        runs = [(1, "fp32", ""), (1, "bf16", "bf16_"), (2, "bf16", "threads2_bf16_")]
        for threads, precision, prefix in runs:
            torch.set_num_threads(threads)  # 1 is what `rnngen sample` does by default
            for samples, name in ((1, "one"), (16, "batch16")):
                tokens = options.tokens if samples == 1 else max(options.tokens // 4, 1)
                result = throughput(model, tokenizer, samples, tokens, precision)
                figures[f"{prefix}{name}_tokens_per_s"] = result["tokens_per_s"]
                figures[f"{prefix}{name}_chars_per_s"] = result["chars_per_s"]
                if not prefix and samples == 1:
                    figures["chars_per_token"] = result["chars_per_token"]
    c = model.config
    figures.update(
        model=f"{c.layers}x {c.cell} {c.hidden_size}, embed {c.embed_size}, tied {c.tie}, "
        f"{tokenizer.kind} vocab {tokenizer.vocab_size}",
        cpus=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
    )  # fmt: skip
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps(rounded))


if __name__ == "__main__":
    main()
