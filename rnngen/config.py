"""Frozen configuration dataclasses, stdlib only.

They are the single description of a tokenizer, a model and a training run: the CLI builds
them from options, the library consumes them, and checkpoints store them as JSON so a model
can be rebuilt anywhere without the code that trained it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from rnngen.errors import RnngenError, parse_json

TOKENIZER_KINDS = ("char", "bpe", "unigram", "word")
DEFAULT_VOCAB_SIZE = 1024
CELLS = ("lstm", "gru", "rnn")
# The model: a recurrent stack, or the fixed-window neural LM (Bengio et al. 2003) that reads
# only the previous `window` tokens.
MODELS = ("rnn", "window")
DEFAULT_WINDOW = 8  # tokens the window model reads when --window is not given
MAX_WINDOW = 1024
# Connections between stacked recurrent layers: none; residual (a layer adds its input to its
# output); highway (a learned gate mixes the two); dense (each layer reads the embedding and
# every layer below, and the output layer reads every layer).
SKIPS = ("none", "residual", "highway", "dense")
SOFTMAXES = ("full", "adaptive")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device_options(device: str = "auto", precision: str = "auto") -> None:
    """--device and --precision, each checked against what rnngen knows (train, sample, serve
    and the API say the same)."""
    if device not in DEVICES:
        raise RnngenError(f"unknown device {device!r}; use one of {DEVICES}")
    if precision not in PRECISIONS:
        raise RnngenError(f"unknown precision {precision!r}; use one of {PRECISIONS}")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: str = "bpe"
    # bpe/unigram/word: an exact size the corpus must support, or None for up to
    # DEFAULT_VOCAB_SIZE, fewer when the corpus is too small. char uses every character of
    # the sample (plus 256 byte pieces) and ignores it.
    vocab_size: int | None = None
    # The tokenizer trains on at most this much text, so corpora of any size tokenize in
    # bounded memory and time.
    sample_bytes: int = 20_000_000

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise RnngenError(f"unknown tokenizer kind {self.kind!r}; use one of {TOKENIZER_KINDS}")
        if self.vocab_size is not None and not 1 <= self.vocab_size <= 1_000_000:
            raise RnngenError(f"--vocab-size must be between 1 and 1000000, got {self.vocab_size}")
        if self.sample_bytes < 1:
            raise RnngenError("the tokenizer sample must be at least one byte")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    # Defaults measured on the reference task (tinyshakespeare, 180 s, 2 CPU cores; see
    # BENCHMARKS.md): in a short budget one wide layer learns fastest per second, and the
    # model underfits, so regularization is light. Stack layers (with --residual) for more.
    cell: str = "lstm"
    layers: int = 1
    hidden_size: int = 512
    embed_size: int = 512
    dropout: float = 0.1
    embed_dropout: float = 0.0
    tie: bool = True
    # `residual` is the older spelling of skip="residual" (checkpoints from before `skip`
    # have only it); the two are kept consistent, so either may be read.
    residual: bool = False
    skip: str = "none"
    # "rnn", or "window": the fixed-window LM, reading the previous `window` tokens through
    # `layers` tanh layers `hidden_size` wide (`cell`, `skip` and weight drop do not apply).
    model: str = "rnn"
    window: int = 0  # 0 for an RNN
    # Where `dropout` applies, each position may have its own rate (None: `dropout`): on the
    # embedded input, between stacked layers, and on the top layer's output.
    dropout_input: float | None = None
    dropout_hidden: float | None = None
    dropout_output: float | None = None
    # Locked (variational) dropout: one mask per sequence, the same at every time step (Gal &
    # Ghahramani 2016; AWD-LSTM), instead of a fresh mask per token.
    locked_dropout: bool = False
    # DropConnect on the hidden-to-hidden matrices (Wan et al. 2013; AWD-LSTM's weight drop).
    weight_drop: float = 0.0
    # The output layer: a full softmax, or an adaptive one (Grave et al. 2017) whose clusters
    # end at `cutoffs` (ranks of the training text's token frequencies).
    softmax: str = "full"
    cutoffs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise RnngenError(f"unknown cell {self.cell!r}; use one of {CELLS}")
        self._check_structure()
        if self.softmax not in SOFTMAXES:
            raise RnngenError(f"unknown softmax {self.softmax!r}; use one of {SOFTMAXES}")
        for name in ("dropout_input", "dropout_hidden", "dropout_output"):
            if getattr(self, name) is not None:
                _check_range("--" + name.replace("_", "-"), getattr(self, name), 0.0, 0.95)
        _check_range("--weight-drop", self.weight_drop, 0.0, 0.95)
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))
        if self.softmax == "adaptive" and not (
            self.cutoffs
            and all(isinstance(c, int) for c in self.cutoffs)
            and self.cutoffs[0] > 0
            and list(self.cutoffs) == sorted(set(self.cutoffs))
            and self.cutoffs[-1] < self.vocab_size
        ):
            raise RnngenError(
                f"an adaptive softmax needs increasing cutoffs between 1 and the vocabulary "
                f"size {self.vocab_size} - 1, got {list(self.cutoffs)}"
            )
        _check_range("--layers", self.layers, 1, 64)
        _check_range("--hidden", self.hidden_size, 1, 65536)
        _check_range("--embed", self.embed_size, 1, 65536)
        _check_range("--dropout", self.dropout, 0.0, 0.95)
        _check_range("--embed-dropout", self.embed_dropout, 0.0, 0.95)
        _check_range("vocabulary size", self.vocab_size, 1, 10_000_000)

    def _check_structure(self) -> None:
        """The skip connections and the model kind: known values that fit together."""
        if self.skip not in SKIPS:
            raise RnngenError(f"unknown skip {self.skip!r}; use one of {SKIPS}")
        if self.residual and self.skip not in ("none", "residual"):
            raise RnngenError(f"--residual contradicts --skip {self.skip}")
        if self.residual:
            object.__setattr__(self, "skip", "residual")
        object.__setattr__(self, "residual", self.skip == "residual")
        if self.model not in MODELS:
            raise RnngenError(f"unknown model {self.model!r}; use one of {MODELS}")
        if self.model == "rnn" and self.window != 0:
            raise RnngenError("--window is the window model's (--model window)")
        if self.model == "window":
            if isinstance(self.window, bool) or not isinstance(self.window, int):
                raise RnngenError(f"--window must be a whole number of tokens, got {self.window!r}")
            _check_range("--window", self.window, 1, MAX_WINDOW)
            if self.skip != "none":
                raise RnngenError("the window model has no recurrent stack to skip over")
            if self.weight_drop:
                raise RnngenError("--weight-drop is for recurrent layers, not the window model")

    def describe(self) -> str:
        """A short name of the architecture: "lstm 2x512, highway", "window 8, 1x256"."""
        if self.model == "window":
            return f"window {self.window}, {self.layers}x{self.hidden_size}"
        skip = "" if self.skip == "none" else f", {self.skip}"
        return f"{self.cell} {self.layers}x{self.hidden_size}{skip}"

    def dropout_at(self, position: str) -> float:
        """The dropout rate at `position`: input, hidden or output."""
        rate = getattr(self, f"dropout_{position}")
        return self.dropout if rate is None else rate


# What a model is, as opposed to how it is regularized: `--init-from` keeps these from the
# base checkpoint (its weights only fit them), and takes the rest from the new run's options.
ARCHITECTURE = ("vocab_size", "cell", "layers", "hidden_size", "embed_size", "tie", "residual",
                "skip", "model", "window", "softmax", "cutoffs")  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    # 16 streams: at equal tokens, 0.06 bits/char better than 32 on the sizing grid (a
    # 256-wide LSTM, 1M tokens of tinyshakespeare) for 5-10% less throughput on a CPU.
    batch_size: int = 16
    seq_len: int = 64
    # Peak learning rate; None: set by the model's width (`learning_rate_for`), measured on the
    # sizing grid (BENCHMARKS.md): narrow models want a larger step than wide ones.
    lr: float | None = None
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1
    clip: float = 1.0  # global gradient-norm bound; 0 disables clipping
    epochs: float | None = None
    max_steps: int | None = None
    time_budget: float | None = None  # seconds
    eval_every: int = 0  # steps between evaluations; 0 picks about 10 per run
    eval_tokens: int = 0  # cap on validation tokens per evaluation; 0 = all
    log_every: int = 10
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"
    # AWD-LSTM's training-side regularizers (Merity et al. 2017), all off by default.
    ar: float = 0.0  # activation regularization: ar x mean(output^2) of the top layer
    tar: float = 0.0  # temporal AR: tar x mean((h_t - h_{t-1})^2) of the top layer
    variable_bptt: bool = False  # window lengths drawn around --seq-len, lr scaled to match
    average: bool = False  # average the weights once validation stops improving (NT-ASGD)

    def __post_init__(self) -> None:
        _check_range("--batch-size", self.batch_size, 1, 1 << 20)
        _check_range("--seq-len", self.seq_len, 1, 1 << 20)
        if self.lr is not None:
            _check_range("--lr", self.lr, 1e-9, 10.0)
        _check_range("--warmup", self.warmup_steps, 0, 1 << 30)
        _check_range("--weight-decay", self.weight_decay, 0.0, 10.0)
        _check_range("--clip", self.clip, 0.0, 1e6)
        _check_range("--min-lr-ratio", self.min_lr_ratio, 0.0, 1.0)
        _check_range("--log-every", self.log_every, 1, 1 << 30)
        _check_range("--eval-every", self.eval_every, 0, 1 << 40)
        if self.eval_tokens != 0:  # one token has no target to score: a NaN loss
            _check_range("--eval-tokens", self.eval_tokens, 2, 1 << 62)
        _check_range("--seed", self.seed, -(1 << 63), (1 << 64) - 1)  # what torch accepts
        if self.epochs is not None:
            _check_range("--epochs", self.epochs, 1e-6, 1e6)
        if self.max_steps is not None:
            _check_range("--max-steps", self.max_steps, 1, 1 << 40)
        if self.time_budget is not None:
            _check_range("--time-budget", self.time_budget, 1e-3, 1e8)
        _check_range("--ar", self.ar, 0.0, 1e3)
        _check_range("--tar", self.tar, 0.0, 1e3)
        check_device_options(self.device, self.precision)


# The learning rate tuned for one 512-wide layer (the reference task, BENCHMARKS.md); it
# scales as 1 / width, within the widths where that was measured.
BASE_LR, BASE_WIDTH, LR_WIDTHS = 8e-3, 512, (256, 2048)


def learning_rate_for(hidden_size: int) -> float:
    """The default peak learning rate for a model `hidden_size` wide (AdamW, tied embeddings).

    On the sizing grid (tinyshakespeare, 1000 steps) a 256-wide LSTM scored 2.232 bits/char at
    the 512-wide rate of 8e-3, 2.183 at 1.2e-2 and 2.166 at 1.6e-2, and a 128-wide one 2.393
    at 8e-3 and 2.305 at 1.6e-2: narrow layers want larger steps, about as 1 / width. Widths
    below 256 keep 256's rate (larger ones were not measured)."""
    width = min(max(hidden_size, LR_WIDTHS[0]), LR_WIDTHS[1])
    return BASE_LR * BASE_WIDTH / width


def with_learning_rate(config: TrainConfig, hidden_size: int) -> TrainConfig:
    """`config` with its learning rate set: as given, or by the model's width."""
    if config.lr is not None:
        return config
    return dataclasses.replace(config, lr=learning_rate_for(hidden_size))


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise RnngenError(f"{name} must be between {low} and {high}, got {value}")


T = TypeVar("T")


def to_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


# The JSON types each annotation accepts (bool is never taken for a number).
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
               "tuple[int, ...]": (list,)}  # fmt: skip


def from_json(cls: type[T], text: str) -> T:
    """Rebuild a config, ignoring fields a newer or older version does not know.

    A field of the wrong type, a missing required field or text that is not a JSON object
    is an RnngenError naming the field, never a TypeError deep inside.
    """
    name = cls.__name__  # type: ignore[attr-defined]
    if not isinstance(text, str):
        raise RnngenError(f"{name} is not a JSON object")
    data = parse_json(text, name, object_only=True)
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in data:
            if field.default is dataclasses.MISSING:
                raise RnngenError(f"{name} lacks the field {field.name!r}")
            continue
        value = data[field.name]
        kinds = [k.strip() for k in str(field.type).split("|")]
        allowed = tuple(t for k in kinds for t in _JSON_TYPES.get(k, ()))
        nullable = "None" in kinds and value is None
        if not nullable and (
            not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        ):
            raise RnngenError(f"{name} field {field.name!r} has the wrong type ({value!r})")
        if isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise RnngenError(f"{name} field {field.name!r} has the wrong type ({value!r})")
            value = tuple(value)
        values[field.name] = value
    return cls(**values)


def parse_size(text: str | int | None) -> int | None:
    """'1500000', '1.5M', '200k' -> characters (`rnngen synth --size`); a number is one already."""
    import re

    if text is None or isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise RnngenError(f"--size {text!r} is not a size such as 1500000, 200k or 1.5M")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)
