"""What a user gives a training run, turned into configs: the same for `rnngen train` and
`rnngen.train(...)`, so that an option means one thing whichever way it arrives. (The
corpus's own options, its splits and tokenizer, are the data phase's: training/data.py.)

Stdlib only (automatic sizing's table is imported when a size is named), so the CLI can
check its options before importing torch: a typo fails in milliseconds, before any work.
"""

from __future__ import annotations

import inspect
import re

from rnngen.config import DEFAULT_WINDOW, ModelConfig, TrainConfig
from rnngen.errors import RnngenError, UsageError

M, T = ModelConfig(vocab_size=1), TrainConfig()  # the defaults, stated once in config.py

# --preset awd: AWD-LSTM's recipe (Merity et al. 2017, the Penn Treebank settings of its
# README) on rnngen's AdamW trainer: a 3-layer 1150-wide LSTM, 400-wide tied embeddings,
# locked dropout 0.4 on the input and output and 0.25 between layers, embedding dropout 0.1,
# weight drop 0.5, AR 2, TAR 1, variable BPTT around 70 tokens, and weight averaging. It is
# meant for a GPU or a long CPU run; every option given on the command line wins over it.
PRESETS = {
    "awd": dict(
        cell="lstm", layers=3, hidden=1150, embed=400, tie=True, dropout=0.4,
        dropout_input=0.4, dropout_hidden=0.25, dropout_output=0.4, locked_dropout=True,
        embed_dropout=0.1, weight_drop=0.5, ar=2.0, tar=1.0, variable_bptt=True,
        average=True, seq_len=70, batch_size=20,
    ),
}  # fmt: skip
# The options a preset may set, and their values without one (None: chosen later).
PRESET_DEFAULTS = dict(
    cell=M.cell, layers=None, hidden=None, embed=None, tie=M.tie, dropout=M.dropout,
    dropout_input=None, dropout_hidden=None, dropout_output=None, locked_dropout=False,
    embed_dropout=M.embed_dropout, weight_drop=M.weight_drop, ar=T.ar, tar=T.tar,
    variable_bptt=False, average=False, seq_len=T.seq_len, batch_size=T.batch_size,
)  # fmt: skip
SOFTMAX_CHOICES = ("auto", "full", "adaptive")


def parse_duration(text: str | float | None) -> float | None:
    """'180', '90s', '3m', '1h30m' -> seconds; a number is seconds already."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    match = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text
    )
    if not text.strip() or not match or not any(match.groups()):
        raise RnngenError(f"--time-budget {text!r} is not a duration such as 180, 90s, 3m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def configs(
    *,
    preset: str | None = None,
    size: str = "auto",
    cell: str | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    embed: int | None = None,
    dropout: float | None = None,
    embed_dropout: float | None = None,
    tie: bool | None = None,
    residual: bool = M.residual,
    skip: str | None = None,
    model: str = M.model,
    window: int | None = None,
    softmax: str = "auto",
    dropout_input: float | None = None,
    dropout_hidden: float | None = None,
    dropout_output: float | None = None,
    locked_dropout: bool | None = None,
    weight_drop: float | None = None,
    ar: float | None = None,
    tar: float | None = None,
    variable_bptt: bool | None = None,
    average: bool | None = None,
    clip: float = T.clip,
    lr: float | None = None,
    warmup: int = T.warmup_steps,
    min_lr_ratio: float = T.min_lr_ratio,
    weight_decay: float = T.weight_decay,
    batch_size: int | None = None,
    seq_len: int | None = None,
    epochs: float | None = None,
    max_steps: int | None = None,
    time_budget: str | float | None = None,
    eval_every: int = 0,
    eval_tokens: int = 0,
    log_every: int = T.log_every,
    seed: int = T.seed,
    device: str = T.device,
    precision: str = T.precision,
) -> tuple[TrainConfig, dict]:
    """The run's TrainConfig and its model options (named as ModelConfig's fields; layers and
    hidden_size stay None when automatic sizing is to choose them, softmax may be "auto"),
    checked before any work. The keywords are the CLI's options; an unknown one is a
    TypeError. None means: the preset's value, else the default."""
    given = dict(
        cell=cell, layers=layers, hidden=hidden, embed=embed, tie=tie, dropout=dropout,
        dropout_input=dropout_input, dropout_hidden=dropout_hidden,
        dropout_output=dropout_output, locked_dropout=locked_dropout,
        embed_dropout=embed_dropout, weight_drop=weight_drop, ar=ar, tar=tar,
        variable_bptt=variable_bptt, average=average, seq_len=seq_len, batch_size=batch_size,
    )  # fmt: skip
    if preset is not None and preset not in PRESETS:
        raise RnngenError(f"--preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    if softmax not in SOFTMAX_CHOICES:
        raise RnngenError(f"--softmax must be one of {', '.join(SOFTMAX_CHOICES)}; got {softmax!r}")
    chosen = {**PRESET_DEFAULTS, **PRESETS.get(preset, {})}
    values = {k: chosen[k] if v is None else v for k, v in given.items()}
    if preset is not None and size != "auto":
        raise UsageError("--preset sets the model's size; give --layers/--hidden, not --size")
    cell, layers, hidden, embed, tie = (values[k] for k in ("cell", "layers", "hidden", "embed",
                                                             "tie"))  # fmt: skip
    if model == "window" and given["cell"] is not None:
        raise RnngenError(f"--cell {cell} is for recurrent models; the window model has none")
    if model == "window" and window is None:
        window = DEFAULT_WINDOW
    batch_size, seq_len = values["batch_size"], values["seq_len"]
    config = TrainConfig(
        batch_size=batch_size, seq_len=seq_len, lr=lr, min_lr_ratio=min_lr_ratio,
        warmup_steps=warmup, weight_decay=weight_decay, clip=clip, epochs=epochs,
        max_steps=max_steps, time_budget=parse_duration(time_budget), eval_every=eval_every,
        eval_tokens=eval_tokens, log_every=log_every, seed=seed, device=device,
        precision=precision, ar=values["ar"], tar=values["tar"],
        variable_bptt=values["variable_bptt"], average=values["average"],
    )  # fmt: skip
    options = dict(
        cell=cell, layers=layers, hidden_size=hidden, embed_size=embed,
        dropout=values["dropout"], embed_dropout=values["embed_dropout"], tie=tie,
        residual=residual, skip=skip or ("residual" if residual else "none"), model=model,
        window=0 if window is None else window, dropout_input=values["dropout_input"],
        dropout_hidden=values["dropout_hidden"], dropout_output=values["dropout_output"],
        locked_dropout=values["locked_dropout"], weight_drop=values["weight_drop"],
        softmax=softmax,
    )  # fmt: skip
    options = resolve_size(size, options)
    check = {**complete(options), "softmax": "full"}  # the softmax needs the vocabulary
    ModelConfig(vocab_size=1, **check)  # check the options before any work
    return config, options


def resolve_size(size: str, options: dict) -> dict:
    """Fill the model's layers and widths from --size; what the user gave always wins.

    With `--size auto` and no --layers/--hidden given, they stay None: the training run then
    measures this machine and chooses (rnngen/sizing.py). An --embed alone is kept as given.
    """
    from rnngen.training.sizing import SIZES

    if size not in ("auto", *SIZES):
        raise RnngenError(f"--size must be auto, {', '.join(SIZES)}; got {size!r}")
    options = dict(options)
    if size == "auto" and options["layers"] is None and options["hidden_size"] is None:
        return options
    layers, hidden = SIZES.get(size, (M.layers, M.hidden_size))
    options["layers"] = layers if options["layers"] is None else options["layers"]
    options["hidden_size"] = hidden if options["hidden_size"] is None else options["hidden_size"]
    return options


def complete(options: dict) -> dict:
    """The model options with every size filled: the embedding as wide as the hidden layer
    unless given, and ModelConfig's defaults for what auto-sizing has yet to choose."""
    options = dict(options)
    for name in ("layers", "hidden_size"):
        options[name] = getattr(M, name) if options[name] is None else options[name]
    if options["embed_size"] is None:
        options["embed_size"] = options["hidden_size"]
    return options


# The corpus options of `train(...)`, with their defaults; the rest go to `configs`.
CORPUS_OPTIONS = {"kind": "bpe", "vocab_size": None, "valid": None, "test": None,
                  "valid_frac": None, "test_frac": None}  # fmt: skip


def check_sample_every(evaluations: int) -> int:
    if not isinstance(evaluations, int) or evaluations < 0:
        raise RnngenError(f"--sample-every must be 0 (off) or a number of evaluations, got "
                          f"{evaluations!r}")  # fmt: skip
    return evaluations


def check_run(time_budget, options: dict, log, sample_every: int) -> tuple:
    """Every option of a training run checked, before any work (and before torch is imported:
    a typo fails in milliseconds): (TrainConfig, model options, corpus options, the options
    given). Pops the corpus options from `options`."""
    from rnngen.corpus.splits import check_held_out
    from rnngen.training.loggers import parse_specs

    given = {k: v for k, v in options.items() if v is not None}  # before defaults fill in
    corpus_options = {k: options.pop(k, v) for k, v in CORPUS_OPTIONS.items()}
    config, model_options = configs(time_budget=time_budget, **options)
    check_held_out(*(corpus_options[k] for k in ("valid", "test", "valid_frac", "test_frac")))
    parse_specs(log)
    check_sample_every(sample_every)
    return config, model_options, corpus_options, given


# The annotations of `train`'s options, which `rnngen.arguments.checked` checks them against.
TRAIN_OPTIONS = {
    **{name: p.annotation for name, p in inspect.signature(configs).parameters.items()},
    "kind": "str", "vocab_size": "int | None", "valid": "str | Path | None",
    "test": "str | Path | None", "valid_frac": "float | None", "test_frac": "float | None",
}  # fmt: skip
