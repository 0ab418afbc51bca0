"""What the model writes while it learns (`rnngen train --sample-every EVALS`).

At every EVALS-th evaluation, a short sample at each of a few temperatures, from a line
start, by the model the evaluation scored. It must not change the run, so:

* the model samples in eval mode (no dropout, which would draw from the global generator)
  and goes back to the mode it was in;
* every token is chosen with a generator of the sample's own (the sampling engine,
  rnngen/sampler.py), seeded from the run's seed and the step, so the samples are
  reproducible;
* and as a guard, the global generators' states (CPU, and the device's) are saved before and
  restored after (`torch.random.fork_rng`);
* it samples on one thread (then gives training back its threads): a token at a time is too
  little work to share.

A run with and without --sample-every saves bit-identical weights and resume states (tested).
"""

from __future__ import annotations

import time

import torch

from rnngen.training.options import check_sample_every  # noqa: F401 (its home before)

SAMPLE_CHARS = 200
TEMPERATURES = (0.5, 1.0)


def sample_seed(run_seed: int, step: int, index: int) -> int:
    """The seed of sample `index` at `step`: fixed by the run, distinct across steps."""
    return (run_seed * 1_000_003 + step * 10 + index) % 2**62


def training_samples(model, tokenizer, run_seed: int, step: int, chars: int = SAMPLE_CHARS,
                     temperatures: tuple[float, ...] = TEMPERATURES) -> dict:  # fmt: skip
    """The `samples` record of metrics.jsonl: {"event", "step", "seconds", "samples":
    [{"temperature", "seed", "text"}, ...]}, the global random state untouched."""
    from rnngen.sampling.generate import Done, SampleConfig
    from rnngen.sampling.sampler import generate

    started = time.perf_counter()
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    samples, training, threads = [], model.training, torch.get_num_threads()
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        model.eval()
        # One token at a time is too little work to share between threads: on a busy
        # machine training's threads waiting for each other made sampling 10x slower (as
        # `rnngen sample` found, which uses one thread by default).
        torch.set_num_threads(1)
        try:
            for index, temperature in enumerate(temperatures):
                seed = sample_seed(run_seed, step, index)
                config = SampleConfig(temperature=temperature, max_chars=chars,
                                      max_tokens=4 * chars + 16, seed=seed)  # fmt: skip
                events = generate(model, tokenizer, "", config, precision="fp32")
                text = next(e.text for e in events if isinstance(e, Done))
                samples.append({"temperature": temperature, "seed": seed, "text": text})
        finally:
            torch.set_num_threads(threads)
            model.train(training)
    seconds = time.perf_counter() - started
    return {"event": "samples", "step": step, "seconds": seconds, "samples": samples}
