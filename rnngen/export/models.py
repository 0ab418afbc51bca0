"""`rnngen export --format onnx`: a checkpoint as ONNX models that run without torch.

Two models, both fp32 and both with the full normalized distribution (an adaptive softmax
assembles it from its clusters):

* `step.onnx`: one token per row, `tokens` (B,) int64 and `state` (L, S, B, H) float32 ->
  `logprobs` (B, V) and `state_out` (L, S, B, H). S is 2 for an LSTM (h, then c) and 1 for a
  GRU or a vanilla RNN; a zero state is the start of a text. It is the sampler's own step
  (`rnngen.sample.cell_step`: `torch.lstm_cell` & co. on the model's weights), so the ONNX
  step and `rnngen sample` share one definition.
* `window.onnx`: `tokens` (B, T) -> `logprobs` (B, T, V) and `state_out`: the model's own
  forward pass (`RNNLM.forward`), which the exporter turns into ONNX's LSTM and GRU
  operators with T free. PyTorch's exporter unrolls a vanilla tanh RNN over the example's
  length instead, so a vanilla layer goes in as a GRU whose gates are pinned (reset gate 1,
  update gate 0: h' = tanh(W x + b + R h + b'), bit for bit the same in torch).

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
from rnngen.sample import cell_step

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
    """(L, S, H): the state is (L, S, B, H), S = 2 for an LSTM (h, c), else 1 (h)."""
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
        lstm, layers = self.model.config.cell == "lstm", self.model.config.layers
        per_layer = [(state[i, 0], state[i, 1]) if lstm else state[i, 0] for i in range(layers)]
        logits, new_state = cell_step(self.model, tokens, per_layer)  # each (B, H)
        stacked = [torch.stack(s) if lstm else s.unsqueeze(0) for s in new_state]  # (S, B, H)
        return normalized(self.model, logits), torch.stack(stacked)  # (B, V), (L, S, B, H)


class WindowModule(nn.Module):
    """(tokens (B, T), state (L, S, B, H)) -> (log-probabilities (B, T, V), state): the
    model's forward pass, vanilla layers as pinned GRUs (see the module's docstring)."""

    def __init__(self, model: RNNLM):
        super().__init__()
        if model.config.cell == "rnn":
            model = copy.deepcopy(model)
            model.layers = nn.ModuleList(pinned_gru(layer) for layer in model.layers)
        self.model = model

    def forward(self, tokens: torch.Tensor, state: torch.Tensor):
        lstm, layers = self.model.config.cell == "lstm", self.model.config.layers
        # nn.LSTM's layout: per layer (1, B, H), a pair for an LSTM.
        per_layer = [(state[i, 0:1], state[i, 1:2]) if lstm else state[i, 0:1]
                     for i in range(layers)]  # fmt: skip
        logits, new_state = self.model(tokens, per_layer)  # (B, T, V)
        stacked = [torch.cat(s) if lstm else s for s in new_state]  # (S, B, H)
        return normalized(self.model, logits), torch.stack(stacked)


# Gate pre-activations this large saturate the sigmoid to exactly 0 or 1 in fp32.
_PINNED = 1e4


def pinned_gru(layer: nn.RNN) -> nn.GRU:
    """A vanilla tanh layer as a GRU whose reset gate is 1 and update gate 0: its candidate
    tanh(W_in x + b_in + r * (W_hn h + b_hn)) is then the tanh RNN's step, and h' = it."""
    if layer.nonlinearity != "tanh":
        raise RnngenError(f"cannot export a {layer.nonlinearity} RNN layer")
    hidden = layer.hidden_size
    gru = nn.GRU(layer.input_size, hidden, batch_first=True).to(layer.weight_ih_l0.device)
    with torch.no_grad():
        for param in gru.parameters():
            param.zero_()
        gru.bias_ih_l0[:hidden] = _PINNED  # reset gate r = 1 (PyTorch's gate order: r, z, n)
        gru.bias_ih_l0[hidden : 2 * hidden] = -_PINNED  # update gate z = 0
        gru.weight_ih_l0[2 * hidden :] = layer.weight_ih_l0
        gru.bias_ih_l0[2 * hidden :] = layer.bias_ih_l0
        gru.weight_hh_l0[2 * hidden :] = layer.weight_hh_l0
        gru.bias_hh_l0[2 * hidden :] = layer.bias_hh_l0
    return gru.eval()


def export_models(model: RNNLM, window: bool = True) -> dict[str, bytes]:
    """The ONNX models of `model` (fp32, on the CPU) as serialized protos: "step", and
    "window" unless `window` is False."""
    require_packages(("onnx", "onnxscript"))
    model = copy.deepcopy(model).float().cpu().eval()
    layers, parts, hidden = state_shape(model.config)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    state = torch.zeros(layers, parts, EXAMPLE_BATCH, hidden)
    tokens = torch.zeros(EXAMPLE_BATCH, dtype=torch.long)
    out = {"step": _export(StepModule(model), (tokens, state), {"tokens": {0: batch}},
                           ["batch"])}  # fmt: skip
    if window:
        time = torch.export.Dim("time", min=1, max=1 << 24)
        tokens = torch.zeros(EXAMPLE_BATCH, EXAMPLE_TIME, dtype=torch.long)
        out["window"] = _export(WindowModule(model), (tokens, state),
                                {"tokens": {0: batch, 1: time}}, ["batch", "time"])  # fmt: skip
    return out


def _export(module: nn.Module, args: tuple, token_dims: dict, logprob_dims: list) -> bytes:
    dynamic = {**token_dims, "state": {2: token_dims["tokens"][0]}}
    with quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=OPSET, external_data=False,
                input_names=["tokens", "state"], output_names=["logprobs", "state_out"],
                dynamic_shapes=dynamic, verbose=False, report=False, optimize=False,
            )  # fmt: skip
        except Exception as e:  # the exporter's failures are many and deep; one line here
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RnngenError(f"torch's ONNX exporter failed: {message}") from None
    proto = program.model_proto
    # The exporter's intermediate shape hints may keep the example's sizes (ONNX's GRU/LSTM
    # shape inference does); they are optional, so drop them and name the free dimensions.
    del proto.graph.value_info[:]
    vocab = module.model.config.vocab_size
    _set_dims(proto.graph.output[0], [*logprob_dims, vocab])
    _set_dims(proto.graph.output[1], [*args[1].shape[:2], "batch", args[1].shape[3]])
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
