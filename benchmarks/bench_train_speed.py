"""Training throughput in fp32 and bf16, against the machine's measured matmul peak.

Prints one JSON line: the GEMM peak (TFLOP/s, fp32 and bf16, measured here), then for each
model size the training tokens/s in each precision, the model FLOPs per token
(6 x matmul parameters touched per token, the usual forward+backward estimate) and the share
of the peak that reaches. Also trains one small model for a fixed number of steps in both
precisions from the same seed and reports both validation losses: `--precision auto` may
only pick bf16 where the curves agree.

    python benchmarks/bench_train_speed.py
"""

from __future__ import annotations

import json
import os
import statistics
import time

import torch

from rnngen.config import ModelConfig, TrainConfig
from rnngen.hardware import autocast
from rnngen.model import RNNLM
from rnngen.synth import generate_lines
from rnngen.training.loop import Evaluation, Trainer

CPU = torch.device("cpu")
SIZES = [  # (layers, hidden, vocab, batch)
    (1, 256, 1024, 64),
    (1, 512, 1024, 64),
    (2, 512, 1024, 64),
    (1, 1024, 1024, 64),
]


def gemm_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    runs = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        runs.append(2 * n**3 / (time.perf_counter() - start) / 1e12)
    return statistics.median(runs)


def flops_per_token(layers: int, hidden: int, vocab: int) -> float:
    """Forward+backward FLOPs per token: 6 per weight of the LSTM gates and the output."""
    lstm = layers * 4 * hidden * (2 * hidden)
    return 6 * (lstm + hidden * vocab)


def tokens_per_second(layers, hidden, vocab, batch, precision, seq_len=64, seconds=8.0) -> float:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=vocab, layers=layers, hidden_size=hidden, embed_size=hidden)
    model = RNNLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, seq_len + 1))

    def step():
        with autocast(CPU, precision):
            logits, _ = model(x[:, :-1])  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()
    rates = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        rates.append(batch * seq_len / (time.perf_counter() - start))
    return statistics.median(rates)


def curves_agree(steps: int = 300) -> dict:
    """The same model, data and seed in fp32 and bf16: final validation loss of each."""
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer

    lines = list(generate_lines(3000, seed=1))
    tokenizer = train_tokenizer([line.rstrip("\n") for line in lines], TokenizerConfig(kind="char"))
    ids = tokenizer.encode_array("".join(lines))
    split = int(len(ids) * 0.9)
    out = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = RNNLM(
            ModelConfig(vocab_size=tokenizer.vocab_size, layers=1, hidden_size=256, embed_size=256)
        )
        config = TrainConfig(batch_size=32, seq_len=64, max_steps=steps, seed=0)
        trainer = Trainer(model, ids[:split], ids[split:], config, CPU, precision)
        evals = [e.valid_loss for e in trainer.run() if isinstance(e, Evaluation)]
        out[precision] = [round(v, 4) for v in evals]
    return out


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    peak = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    figures: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
        "gemm_peak_tflops": {k: round(v, 3) for k, v in peak.items()},
        "models": [],
    }
    for layers, hidden, vocab, batch in SIZES:
        row = {"layers": layers, "hidden": hidden, "vocab": vocab, "batch": batch}
        flops = flops_per_token(layers, hidden, vocab)
        for precision in ("fp32", "bf16"):
            rate = tokens_per_second(layers, hidden, vocab, batch, precision)
            row[f"{precision}_tokens_per_s"] = round(rate)
            row[f"{precision}_share_of_peak"] = round(rate * flops / (peak[precision] * 1e12), 3)
        row["bf16_speedup"] = round(row["bf16_tokens_per_s"] / row["fp32_tokens_per_s"], 2)
        figures["models"].append(row)
    figures["valid_loss_curves_fp32_vs_bf16"] = curves_agree()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
