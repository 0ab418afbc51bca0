"""The classic lessons, measured: cells, clipping, and skip connections in deep stacks.

Trains small models for a fixed number of steps on the built-in corpus (character level, from
the same seed) and prints one JSON line with each run's final validation bits per character
and its share of clipped steps:

* vanilla tanh RNN vs GRU vs LSTM (one layer): gating is what keeps gradients alive;
* the vanilla RNN without and with gradient-norm clipping (Pascanu et al. 2013);
* an 8-layer LSTM stack without and with `--residual` skip connections.

    python benchmarks/bench_lessons.py [steps]
"""

from __future__ import annotations

import json
import sys
import time

import torch

from rnngen.config import ModelConfig, TokenizerConfig, TrainConfig
from rnngen.synth import generate_lines
from rnngen.tokenizer import train_tokenizer
from rnngen.train import Evaluation, Finished, Trainer

CPU = torch.device("cpu")


def run(ids, valid, vocab: int, steps: int, clip: float = 1.0, **model) -> dict:
    torch.manual_seed(0)
    from rnngen.model import RNNLM

    config = ModelConfig(vocab_size=vocab, hidden_size=128, embed_size=128, dropout=0.0,
                         embed_dropout=0.0, **model)  # fmt: skip
    train = TrainConfig(batch_size=32, seq_len=64, lr=3e-3, max_steps=steps, clip=clip,
                        warmup_steps=20, seed=0)  # fmt: skip
    started = time.perf_counter()
    trainer = Trainer(RNNLM(config), ids, valid, train, CPU, "bf16")
    best, clipped = float("inf"), 0.0
    for event in trainer.run():
        if isinstance(event, Evaluation):
            best = min(best, event.valid_loss)
        elif isinstance(event, Finished):
            clipped = event.clipped_share
    chars_per_token = 1.0  # character tokenizer
    return {
        "valid_bpc": round(best / (0.6931471805599453 * chars_per_token), 4),
        "clipped_share": round(clipped, 3),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    lines = list(generate_lines(6000, seed=3))
    tokenizer = train_tokenizer([line.rstrip("\n") for line in lines], TokenizerConfig(kind="char"))
    ids = tokenizer.encode_array("".join(lines))
    split = int(len(ids) * 0.95)
    train, valid = ids[:split], ids[split : split + 50_000]
    vocab = tokenizer.vocab_size
    figures = {"date": time.strftime("%Y-%m-%d"), "steps": steps}
    for cell in ("rnn", "gru", "lstm"):
        figures[f"{cell}_1_layer"] = run(train, valid, vocab, steps, cell=cell, layers=1)
    figures["rnn_no_clipping"] = run(train, valid, vocab, steps, clip=0.0, cell="rnn", layers=1)
    for residual in (False, True):
        key = f"lstm_8_layers_{'residual' if residual else 'plain'}"
        figures[key] = run(train, valid, vocab, steps, cell="lstm", layers=8, residual=residual)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
