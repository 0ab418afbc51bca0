"""`rnngen export --format onnx`: a checkpoint as ONNX models that run without torch.

Two models, both fp32 and both with the full normalized distribution (an adaptive softmax
assembles it from its clusters):

* `step.onnx`: one token per row, `tokens` (B,) int64 and `state` (L, S, B, H) float32 ->
  `logprobs` (B, V) and `state_out` (L, S, B, H). S is 2 for an LSTM (h, then c) and 1 for a
  GRU or a vanilla RNN; a zero state is the start of a text. It is the sampler's own step
  (`RNNLM.step`: `torch.lstm_cell` & co. on the model's weights), so the ONNX
  step and `rnngen sample` share one definition.
* `window.onnx`: `tokens` (B, T) -> `logprobs` (B, T, V) and `state_out`: the model's own
  forward pass (`RNNLM.forward`), as ONNX's LSTM, GRU and RNN operators with T free. It goes
  through torch's TorchScript exporter (`dynamo=False`): the torch.export-based one fixes T
  at the example's length for GRU and vanilla layers (torch 2.13; shapes folded from the
  example into Reshape nodes), which the verification caught. The step, which has no time
  axis, goes through the torch.export-based exporter.

Beside them: `tokenizer.model` (SentencePiece) and `model.json`, what a runtime needs (the
vocabulary size, the state's shape, the line-start token, the checkpoint's sha256, how the
tokenizer's rules go beyond SentencePiece's; see `runtime_info`). torch's exporter
(`torch.onnx.export(dynamo=True)`) needs the `onnx` and `onnxscript` packages, and the
verification (rnngen/export_verify.py) `onnxruntime`: the optional extra `rnngen[export]`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from rnngen.errors import RnngenError
from rnngen.model import RNNLM

FORMATS = ("onnx",)
OPSET = 20
RUNTIME_FORMAT = "rnngen-onnx/1"
FILES = {"step": "step.onnx", "window": "window.onnx", "tokenizer": "tokenizer.model",
         "runtime": "model.json"}  # fmt: skip
# Sizes the exporter traces with: distinct, and none of them 1, so that nothing it sees can
# be mistaken for a fixed dimension of the model.
EXAMPLE_BATCH, EXAMPLE_TIME = 3, 7
PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the pip names are the import names


def require_packages(packages: tuple[str, ...] = PACKAGES) -> None:
    """The one-line error that names a missing package, before any work."""
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            raise RnngenError(
                f"--format onnx needs the {name} package, which is not installed: "
                "pip install 'rnngen[export]' (onnx, onnxscript, onnxruntime)"
            ) from None


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise RnngenError(f"unknown export format {name!r}; use one of {FORMATS}")
    return name


def state_shape(config) -> tuple[int, int, int]:
    """(L, S, H): the state is (L, S, B, H), S = 2 for an LSTM (h, c), else 1 (h); the window
    model's is (1, 1, B, (window - 1) x embed): the embeddings of the last tokens read."""
    if config.model == "window":
        return 1, 1, (config.window - 1) * config.embed_size
    return config.layers, 2 if config.cell == "lstm" else 1, config.hidden_size


def normalized(model: RNNLM, logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities from the model's logits (an adaptive softmax's already are)."""
    logits = logits.float()
    return logits if model.adaptive is not None else F.log_softmax(logits, dim=-1)


class StepModule(nn.Module):
    """(tokens (B,), state (L, S, B, H)) -> (log-probabilities (B, V), state): the sampler's
    step on the model's own weights."""

    def __init__(self, model: RNNLM):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, state: torch.Tensor):
        layers, parts, _ = state_shape(self.model.config)
        lstm = parts == 2
        per_layer = [(state[i, 0], state[i, 1]) if lstm else state[i, 0] for i in range(layers)]
        logits, new_state = self.model.step(tokens, per_layer)  # each (B, H)
        stacked = [torch.stack(s) if lstm else s.unsqueeze(0) for s in new_state]  # (S, B, H)
        return normalized(self.model, logits), torch.stack(stacked)  # (B, V), (L, S, B, H)


class WindowModule(nn.Module):
    """(tokens (B, T), state (L, S, B, H)) -> (log-probabilities (B, T, V), state): the
    model's forward pass."""

    def __init__(self, model: RNNLM):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, state: torch.Tensor):
        layers, parts, _ = state_shape(self.model.config)
        lstm = parts == 2
        # nn.LSTM's layout: per layer (1, B, H), a pair for an LSTM.
        per_layer = [(state[i, 0:1], state[i, 1:2]) if lstm else state[i, 0:1]
                     for i in range(layers)]  # fmt: skip
        logits, new_state = self.model(tokens, per_layer)  # (B, T, V)
        stacked = [torch.cat(s) if lstm else s for s in new_state]  # (S, B, H)
        return normalized(self.model, logits), torch.stack(stacked)


def export_models(model: RNNLM, window: bool = True) -> dict[str, bytes]:
    """The ONNX models of `model` (fp32, on the CPU) as serialized protos: "step", and
    "window" unless `window` is False."""
    require_packages(("onnx", "onnxscript"))
    model = copy.deepcopy(model).float().cpu().eval()
    layers, parts, hidden = state_shape(model.config)
    if hidden == 0:  # a zero-width tensor crashes the exporter
        raise RnngenError("a window model of one token carries no state, which ONNX cannot "
                          "hold; export a model with --window 2 or more")  # fmt: skip
    state = torch.zeros(layers, parts, EXAMPLE_BATCH, hidden)
    tokens = torch.zeros(EXAMPLE_BATCH, dtype=torch.long)
    out = {"step": _export_step(StepModule(model), (tokens, state))}
    if window:
        tokens = torch.zeros(EXAMPLE_BATCH, EXAMPLE_TIME, dtype=torch.long)
        out["window"] = _export_window(WindowModule(model), (tokens, state))
    return out


def _export_step(module: StepModule, args: tuple) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=OPSET, external_data=False,
                input_names=list(INPUTS), output_names=list(OUTPUTS), verbose=False,
                dynamic_shapes={"tokens": {0: batch}, "state": {2: batch}},
            )  # fmt: skip
        except Exception as e:  # the exporter's failures are many and deep; one line here
            raise _failed(e) from None
    return _finish(program.model_proto, module.model.config, ["batch"])


def _export_window(module: WindowModule, args: tuple) -> bytes:
    import onnx

    axes = {"tokens": {0: "batch", 1: "time"}, "state": {2: "batch"},
            "logprobs": {0: "batch", 1: "time"}, "state_out": {2: "batch"}}  # fmt: skip
    buffer = io.BytesIO()
    with quiet_exporter(), torch.no_grad():
        try:
            torch.onnx.export(
                module, args, buffer, dynamo=False, opset_version=OPSET,
                input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=axes,
            )  # fmt: skip
        except Exception as e:
            raise _failed(e) from None
    proto = onnx.load_from_string(buffer.getvalue())
    return _finish(proto, module.model.config, ["batch", "time"])


INPUTS, OUTPUTS = ("tokens", "state"), ("logprobs", "state_out")


def _failed(error: Exception) -> RnngenError:
    lines = str(error).strip().splitlines()
    return RnngenError(
        f"torch's ONNX exporter failed: {lines[0] if lines else type(error).__name__}"
    )


def _finish(proto, config, logprob_dims: list) -> bytes:
    """The protocol buffer with its outputs' free dimensions named, serialized. The
    exporters' intermediate shape hints may keep the example's sizes; they are optional,
    so they go."""
    del proto.graph.value_info[:]
    layers, parts, hidden = state_shape(config)
    _set_dims(proto.graph.output[0], [*logprob_dims, config.vocab_size])
    _set_dims(proto.graph.output[1], [layers, parts, "batch", hidden])
    return proto.SerializeToString()


def _set_dims(value, dims: list) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = int(d)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter reports its progress with print() and warns through logging and
    warnings; the library never prints, so all of it is held back while it runs."""
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith(("torch.onnx", "torch.export", "onnxscript", "onnx_ir"))
    ]
    loggers += [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]  # fmt: skip
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    sink = io.StringIO()
    try:
        with (warnings.catch_warnings(), contextlib.redirect_stdout(sink),
              contextlib.redirect_stderr(sink)):  # fmt: skip
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
