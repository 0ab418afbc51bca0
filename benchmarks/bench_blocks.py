"""The cost of batch invariance: a sampling step on blocks of 16 rows against one product over
the whole batch; prints one JSON line.

SampleBatch (rnngen/stepper.py) runs every matrix product of a step on blocks of exactly
`BLOCK` rows so that a row's arithmetic never depends on the batch. This measures a whole
step (choose + advance, one thread) per batch size, with blocks and with one product over the
batch (BLOCK set to the batch size), fp32 and bf16, for a model (a checkpoint, or by default
`--size base`'s 1x LSTM 512 with random weights and 1024 tokens), and says whether a row's
logits in a batch are bit for bit its logits alone, both ways.

    python benchmarks/bench_blocks.py [CHECKPOINT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import rnngen.sampling.batch as stepper
from rnngen.sampling.batch import SampleBatch

SIZES = (1, 8, 16, 32, 64)


def step_ms(model, tokenizer, precision: str, batch_size: int, block: int) -> float:
    stepper.BLOCK = block
    batch = SampleBatch(model, tokenizer, precision)
    batch.add("The ", list(range(batch_size)), max_tokens=10**6, temperature=0.8)
    for _ in range(10):
        batch.choose()
        batch.advance()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(40):
            batch.choose()
            batch.advance()
        times.append((time.perf_counter() - start) / 40 * 1000)
    return round(statistics.median(times), 3)


def row_logits(model, tokenizer, precision: str, batch_size: int, block: int) -> torch.Tensor:
    stepper.BLOCK = block
    batch = SampleBatch(model, tokenizer, precision)
    batch.add("The ", [7] + list(range(100, 100 + batch_size - 1)), max_tokens=100)
    for _ in range(3):
        batch.choose()
        batch.advance()
    return batch.logits[0].clone()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?")
    a = parser.parse_args()
    torch.set_num_threads(1)
    if a.checkpoint:
        from rnngen.api import load

        lm = load(a.checkpoint, "cpu")
        model, tokenizer, name = lm.model, lm.tokenizer, a.checkpoint
    else:
        from rnngen.config import ModelConfig, TokenizerConfig
        from rnngen.corpus.tokenizer import train_tokenizer
        from rnngen.model import RNNLM
        from rnngen.synth import generate_lines

        tokenizer = train_tokenizer(list(generate_lines(2000, seed=0)), TokenizerConfig())
        torch.manual_seed(0)
        model = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size)).eval()
        name = "random 1x512 (--size base)"
    out = {"bench": "blocks", "model": name, "block": stepper.BLOCK, "threads": 1}
    block = stepper.BLOCK
    for precision in ("fp32", "bf16"):
        figures = {}
        for size in SIZES:
            figures[str(size)] = {
                "blocks_ms": step_ms(model, tokenizer, precision, size, block),
                "one_product_ms": step_ms(model, tokenizer, precision, size, size),
            }
        alone = row_logits(model, tokenizer, precision, 1, block)
        figures["invariant_with_blocks"] = all(
            torch.equal(row_logits(model, tokenizer, precision, n, block), alone) for n in SIZES[1:]
        )
        alone = row_logits(model, tokenizer, precision, 1, 1)
        figures["invariant_with_one_product"] = all(
            torch.equal(row_logits(model, tokenizer, precision, n, n), alone) for n in SIZES[1:]
        )
        out[precision] = figures
    stepper.BLOCK = block
    print(json.dumps(out))


if __name__ == "__main__":
    main()
