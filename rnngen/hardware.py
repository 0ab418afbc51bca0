"""Which device and precision to run on, and the autocast context for them.

`auto` picks cuda, then mps, then cpu. Precision `auto`: bf16 autocast on GPUs that support
it, fp16 with a gradient scaler on older GPUs, bf16 autocast on CPUs with native bf16 matrix
units (AMX or AVX512-BF16, where nn.LSTM trains 3-4x faster than in fp32), fp32 elsewhere.
Master weights stay fp32 in every case; only the matrix products run in low precision.
"""

from __future__ import annotations

import contextlib
import re

import torch

from rnngen.errors import RnngenError


def resolve_device(name: str) -> torch.device:
    """auto, cpu, cuda, cuda:N or mps, checked to be there; anything else (torch's other
    device types, which rnngen does not run on) is one clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(name, str) or not re.fullmatch(r"cpu|mps|cuda(:\d{1,4})?", name, re.ASCII):
        raise RnngenError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RnngenError(f"--device {name}: no CUDA GPU is available here (try --device auto)")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise RnngenError(f"--device {name}: there are {torch.cuda.device_count()} CUDA GPUs here")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise RnngenError("--device mps: Apple's Metal backend is not available here")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16, read from the CPU flags (torch has no public query for them)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if name == "fp16" and device.type == "cpu":
        raise RnngenError("--precision fp16 needs a GPU; on a CPU use bf16 or fp32")
    return name


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def fused_adam(device: torch.device) -> bool:
    """Whether AdamW's fused kernel serves this device. On a 2-core CPU it steps 5.4x faster
    than the default (1.6 vs 8.9 ms for a model with an 8192 x 200 embedding, see
    BENCHMARKS.md), which matters most when a large embedding is updated every step."""
    return device.type in ("cpu", "cuda")
