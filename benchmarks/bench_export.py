"""`rnngen export --format onnx` on a trained checkpoint; prints one JSON line of figures.

- export_s: `rnngen.export` (both models, the verification, the files); sizes in bytes.
- verification: what the export measured on the checkpoint's held-out text (the largest
  |ln p_onnx - ln p_torch| over whole distributions and over the text's own next tokens).
- step_tokens_per_s: one greedy token at a time, batch 1, one thread: onnxruntime's
  step.onnx against rnngen's own sampler step (`SampleBatch.advance`) in fp32 and bf16; median
  of 3 runs of 500 tokens.
- greedy_same_fp32 / greedy_same_bf16: of the prompts, how many continue (100 tokens,
  greedy) exactly as `rnngen sample --temp 0 --precision fp32` / `bf16` does, with
  examples/onnx_sample.py's own code.

    python benchmarks/bench_export.py CHECKPOINT [--tokens 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rnngen
from rnngen.checkpoint import load_model
from rnngen.sampling.batch import SampleBatch
from rnngen.sampling.generate import Done, SampleConfig
from rnngen.sampling.sampler import generate

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["ROMEO:", "KING HENRY VI:\nWhat", "First Citizen:\nWe are", "JULIET:\nO Romeo, Romeo!",
           "", "The king is dead", "My lord, I", "To be, or not to be"]  # fmt: skip


def example():
    spec = importlib.util.spec_from_file_location(
        "onnx_sample", ROOT / "examples" / "onnx_sample.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def onnx_rate(directory: Path, tokens: int = 500) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(directory / "step.onnx"), options,
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    layers, parts, _, hidden = json.loads((directory / "model.json").read_text())["state"]["shape"]
    state, token = np.zeros((layers, parts, 1, hidden), np.float32), np.array([0])
    started = time.perf_counter()
    for _ in range(tokens):
        logprobs, state = session.run(None, {"tokens": token, "state": state})
        token = np.array([int(logprobs[0].argmax())])
    return tokens / (time.perf_counter() - started)


def torch_rate(model, tokenizer, precision: str, tokens: int = 500) -> float:
    batch = SampleBatch(model, tokenizer, precision)
    batch.add("", [None], temperature=0, max_tokens=tokens + 1)
    started = time.perf_counter()
    for _ in range(tokens):
        batch.choose()
        batch.advance()
    return tokens / (time.perf_counter() - started)


def rnngen_greedy(model, tokenizer, prompt: str, tokens: int, precision: str) -> str:
    config = SampleConfig(temperature=0, max_tokens=tokens)
    events = generate(model, tokenizer, prompt, config, precision)
    return next(e.text for e in events if isinstance(e, Done))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "export"
        started = time.perf_counter()
        result = rnngen.export(args.checkpoint, directory)
        export_s = time.perf_counter() - started
        model, tokenizer, _ = load_model(args.checkpoint)
        rates = {"onnxruntime": [], "torch_fp32": [], "torch_bf16": []}
        for _ in range(3):
            rates["onnxruntime"].append(onnx_rate(directory))
            rates["torch_fp32"].append(torch_rate(model, tokenizer, "fp32"))
            rates["torch_bf16"].append(torch_rate(model, tokenizer, "bf16"))
        script = example()
        same = {"fp32": 0, "bf16": 0}
        for prompt in PROMPTS:
            onnx_text = script.greedy(directory, prompt, args.tokens)
            for precision in same:
                same[precision] += onnx_text == rnngen_greedy(model, tokenizer, prompt,
                                                              args.tokens, precision)  # fmt: skip
    c = model.config
    print(json.dumps({
        "model": f"{c.layers}x{c.cell} {c.hidden_size}, {c.softmax} softmax, vocab {c.vocab_size}",
        "export_s": round(export_s, 1), "sizes": result.sizes,
        "verification": result.verification.as_dict(),
        "step_tokens_per_s": {k: round(statistics.median(v)) for k, v in rates.items()},
        "prompts": len(PROMPTS), "greedy_tokens": args.tokens,
        "greedy_same_fp32": same["fp32"], "greedy_same_bf16": same["bf16"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
