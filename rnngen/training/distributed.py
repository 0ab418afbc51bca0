"""Data-parallel training under torchrun: who this process is, and the collectives that keep
every process of a run in lockstep.

torchrun starts one process per GPU (or several on a CPU) and tells each who it is through
the environment: WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
A plain `rnngen train` sees none of these (or a world of one) and gets a `Group` whose
collectives do nothing and return their input, so a single-process run takes exactly the
code path and the numbers it always did.

The rule that keeps ranks from deadlocking: a decision that changes control flow (stop on
Ctrl-C, the end of a time budget, a rollback after a NaN, whether an evaluation is the best)
is taken from a value that every rank received from the same collective, never from a
rank-local clock, flag or loss. Messages travel as JSON in uint8 tensors, never as pickles.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from rnngen.errors import RnngenError

R = TypeVar("R")

# Waiting for rank 0 to tokenize a large corpus can take far longer than the default
# collective timeouts (10 minutes for NCCL); this only bounds that one wait. A rank that
# fails is not waited for this long: torchrun stops the others as soon as one exits.
LONG_WAIT = timedelta(days=1)


@dataclass
class Group:
    """This process's place in a torchrun job; `Group()` is a single process."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None  # set by connect(): "nccl" or "gloo"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _waiting: object = field(default=None, repr=False)  # gloo, long timeout: in_turns()

    @classmethod
    def from_env(cls) -> Group:
        """Read torchrun's variables; without them (or with WORLD_SIZE=1) a single process."""
        env = os.environ
        try:
            world_size = int(env.get("WORLD_SIZE", "1"))
            if world_size <= 1:
                return cls()
            return cls(
                world_size=world_size,
                rank=int(env["RANK"]),
                local_rank=int(env.get("LOCAL_RANK", "0")),
                local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world_size))),
            )
        except (KeyError, ValueError) as e:
            raise RnngenError(
                f"WORLD_SIZE is set but the torchrun environment is incomplete ({e}); "
                "launch with torchrun, or unset WORLD_SIZE for a single process"
            ) from None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes metrics and saves checkpoints."""
        return self.rank == 0

    # -- set-up -----------------------------------------------------------------------------

    def connect(self, device: torch.device) -> torch.device:
        """Join the process group; returns the device this rank trains on.

        CUDA: one GPU per process, cuda:LOCAL_RANK, NCCL. CPU: gloo. The device must be
        chosen first because it decides the backend.
        """
        if not self.enabled:
            return device
        if device.type == "cuda":
            visible = torch.cuda.device_count()
            if self.local_rank >= visible:
                raise RnngenError(
                    f"LOCAL_RANK {self.local_rank} has no GPU: {visible} visible on this "
                    f"machine; use --nproc_per_node {visible} or fewer"
                )
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
            self.backend = "nccl"
        elif device.type == "cpu":
            self.backend = "gloo"
        else:
            raise RnngenError(f"multi-process training runs on cuda or cpu, not {device.type}")
        self.device = device
        try:
            dist.init_process_group(
                self.backend,
                rank=self.rank,
                world_size=self.world_size,
                device_id=device if device.type == "cuda" else None,
            )
        except (RuntimeError, ValueError) as e:
            raise RnngenError(f"cannot join the torchrun process group: {e}") from None
        self._waiting = dist.new_group(backend="gloo", timeout=LONG_WAIT)
        return device

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def in_turns(self, work: Callable[[], R]) -> R:
        """Run `work` on rank 0 first, then on the first process of every other machine,
        then on all the rest, each wave waiting for the one before.

        Tokenizing writes a cache keyed by content: rank 0 fills it; a machine that shares
        the cache directory then only reads it, and a machine with its own cache fills that
        once, before its other processes read it. No two processes ever write one entry.
        """
        if not self.enabled:
            return work()
        result = None
        waves = (self.rank == 0, self.rank != 0 and self.local_rank == 0, self.local_rank != 0)
        for mine in waves:
            if mine:
                result = work()
            dist.barrier(group=self._waiting)
        return result  # type: ignore[return-value]

    def stream_range(self, batch_size: int) -> tuple[int, int]:
        """[start, stop) of the streams (rows of batchify's (B, N)) this rank trains on.

        The global batch is split into contiguous shares, one per rank, so each stream lives
        on one rank from the first window to the last and its carried hidden state (truncated
        BPTT) stays correct; together the ranks cover exactly the single-process batch.
        """
        if batch_size % self.world_size:
            raise RnngenError(
                f"--batch-size {batch_size} must be a multiple of the {self.world_size} "
                "processes: each trains on batch-size / processes of the streams"
            )
        share = batch_size // self.world_size
        return self.rank * share, (self.rank + 1) * share

    # -- agreement --------------------------------------------------------------------------

    def max(self, values: list[float]) -> list[float]:
        """The element-wise maximum over ranks (float64, so clocks keep their precision)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def mean(self, tensor: torch.Tensor) -> float:
        """The mean over ranks of a scalar tensor, as a float (non-finite if any rank's is)."""
        if not self.enabled:
            return tensor.item()
        total = tensor.detach().float().clone()
        dist.all_reduce(total)
        return total.item() / self.world_size

    def broadcast_float(self, value: float) -> float:
        """Rank 0's value, on every rank."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, 0)
        return tensor.item()

    def broadcast_json(self, obj):
        """Rank 0's JSON-able object, on every rank."""
        if not self.enabled:
            return obj
        data = json.dumps(obj).encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, 0)
        buffer = torch.zeros(int(size.item()), dtype=torch.uint8)
        if self.is_main:
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        buffer = buffer.to(self.device)
        dist.broadcast(buffer, 0)
        return json.loads(bytes(buffer.cpu().tolist()))

    def all_gather_json(self, obj) -> list:
        """Every rank's JSON-able object, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        data = json.dumps(obj).encode()
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        longest = max(int(s.item()) for s in sizes)
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        parts = [torch.zeros(longest, dtype=torch.uint8, device=self.device) for _ in sizes]
        dist.all_gather(parts, padded.to(self.device))
        return [
            json.loads(bytes(p[: int(s.item())].cpu().tolist()))
            for p, s in zip(parts, sizes, strict=True)
        ]

    def check_same(self, what: str, value: str) -> None:
        """Fail on a rank whose `value` differs from rank 0's (say, another corpus)."""
        reference = self.broadcast_json(value)
        if reference != value:
            raise RnngenError(
                f"rank {self.rank} disagrees with rank 0 on {what} ({value} vs {reference}); "
                "give every machine the same corpus and options"
            )

    # -- per-rank resume state --------------------------------------------------------------

    def gather_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each rank's own tensors (RNG, hidden state), as `rank{K}.{name}` on every rank.

        Every rank holds the same names and shapes (same position, same local batch), which
        is what lets a plain all_gather carry them.
        """
        if not self.enabled:
            return tensors
        out = {}
        for name in sorted(tensors):
            local = tensors[name].detach().contiguous().to(self.device)
            parts = [torch.empty_like(local) for _ in range(self.world_size)]
            dist.all_gather(parts, local)
            for rank, part in enumerate(parts):
                out[f"rank{rank}.{name}"] = part.cpu()
        return out

    def own_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's share of what gather_tensors() collected, under the plain names."""
        if not self.enabled:
            return tensors
        prefix = f"rank{self.rank}."
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    def broadcast_state(self, state: tuple[dict[str, torch.Tensor], dict] | None):
        """Rank 0's (tensors, info) resume state, on every rank.

        Only rank 0 reads the resume file, so it need not be on a filesystem that other
        machines see.
        """
        if not self.enabled:
            return state
        tensors, info = state if self.is_main and state is not None else ({}, {})
        manifest = {name: [str(t.dtype).removeprefix("torch."), list(t.shape)]
                    for name, t in tensors.items()}  # fmt: skip
        info, manifest = self.broadcast_json([info, manifest])
        out = {}
        for name, (dtype, shape) in manifest.items():
            if self.is_main:
                tensor = tensors[name].contiguous().to(self.device)
            else:
                tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
            dist.broadcast(tensor, 0)
            out[name] = tensor.cpu()
        return out, info
