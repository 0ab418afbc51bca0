"""Data-parallel training throughput on the CPU, one process against two (gloo); one JSON line.

    python benchmarks/bench_distributed.py [--steps N] [--hidden H] [--batch-size B]

Trains the same small LSTM on random tokens with the same global batch three ways, each in
freshly spawned processes so thread settings never leak from one to the next:

- `one_process_one_thread`: one process on one core, the unit that data parallelism
  multiplies;
- `one_process_all_cores`: one process with a thread per core, what a plain `rnngen train`
  gets on this machine;
- `two_processes`: two gloo processes, cores / 2 threads each, which is what
  `torchrun --nproc_per_node 2` runs (rnngen gives each process its share of the cores).

Tokens/s counts the global batch over training time after a few warm-up steps (evaluations
are excluded, as in `rnngen train`); each figure is the best of --repeats interleaved rounds,
since on a shared machine interference only ever slows a run down, and the load average
before and after is printed beside them. `scaling_efficiency` = two_processes /
(2 x one_process_one_thread): 1.0 would be perfect scaling, and it only means something when
each process has cores of its own. With 2 cores the two processes take one core each, the
same silicon that `one_process_all_cores` uses through intra-op threads, so
`speedup_vs_all_cores` says whether DDP or threading uses a small machine better; on a
machine shared with other work the figures also move with that work.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rnngen.config import ModelConfig, TrainConfig  # noqa: E402
from rnngen.model import RNNLM  # noqa: E402
from rnngen.training.distributed import Group  # noqa: E402
from rnngen.training.loop import Step, Trainer  # noqa: E402

WARMUP_STEPS = 3  # the first steps pay for allocation and DDP's bucket set-up


def worker(rank: int, world: int, threads: int, port: int, args, out: str) -> None:
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world))
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(threads)
    group = Group.from_env() if world > 1 else Group()
    device = group.connect(torch.device("cpu"))
    rng = np.random.default_rng(0)
    train_ids = rng.integers(0, args.vocab, 400_000).astype(np.uint16)
    valid_ids = rng.integers(0, args.vocab, 2_000).astype(np.uint16)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                              embed_size=args.hidden, layers=args.layers, dropout=0.0,
                              embed_dropout=0.0))  # fmt: skip
    config = TrainConfig(batch_size=args.batch_size, seq_len=args.seq_len, max_steps=args.steps,
                         log_every=1, eval_tokens=500, device="cpu", precision="fp32")  # fmt: skip
    trainer = Trainer(model, train_ids, valid_ids, config, device, "fp32", group=group)
    elapsed = {e.step: e.elapsed for e in trainer.run() if isinstance(e, Step)}
    if group.is_main:
        tokens = (args.steps - WARMUP_STEPS) * args.batch_size * args.seq_len
        seconds = elapsed[args.steps] - elapsed[WARMUP_STEPS]
        with open(out, "w") as f:
            json.dump({"tokens_per_s": tokens / seconds}, f)
    group.close()


def measure(world: int, threads: int, args) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "result.json")
        processes = [
            spawn.Process(target=worker, args=(rank, world, threads, port, args, out))
            for rank in range(world)
        ]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
        if any(p.exitcode != 0 for p in processes):
            raise SystemExit(f"a worker failed ({world} processes x {threads} threads)")
        with open(out) as f:
            return json.load(f)["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (streams)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    one_thread = all_cores = two = 0.0
    for _ in range(args.repeats):
        one_thread = max(one_thread, measure(1, 1, args))
        all_cores = max(all_cores, measure(1, cores, args))
        two = max(two, measure(2, max(1, cores // 2), args))
    print(
        json.dumps(
            {
                "benchmark": "distributed",
                "backend": "gloo",
                "device": "cpu",
                "cores": cores,
                "cpu": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "model": f"{args.layers}x lstm {args.hidden}, vocab {args.vocab}, fp32",
                "global_batch": args.batch_size,
                "seq_len": args.seq_len,
                "steps": args.steps,
                "repeats": args.repeats,
                "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "tokens_per_s": {
                    "one_process_one_thread": round(one_thread),
                    "one_process_all_cores": round(all_cores),
                    "two_processes": round(two),
                },
                "scaling_efficiency": round(two / (2 * one_thread), 3),
                "speedup_vs_all_cores": round(two / all_cores, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
