"""What a user gives a training run, turned into configs: the same for `rnngen train` and
`rnngen.train(...)`, so that an option means one thing whichever way it arrives. (The
corpus's own options, its splits and tokenizer, are the data phase's: rnngen/train_data.py.)

Stdlib only (automatic sizing's table is imported when a size is named), so the CLI can
check its options before importing torch: a typo fails in milliseconds, before any work.
"""

from __future__ import annotations

import re

from rnngen.config import ModelConfig, TrainConfig
from rnngen.errors import RnngenError

M, T = ModelConfig(vocab_size=1), TrainConfig()  # the defaults, stated once in config.py


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
    size: str = "auto",
    cell: str = M.cell,
    layers: int | None = None,
    hidden: int | None = None,
    embed: int | None = None,
    dropout: float = M.dropout,
    embed_dropout: float = M.embed_dropout,
    tie: bool = M.tie,
    residual: bool = M.residual,
    clip: float = T.clip,
    lr: float | None = None,
    warmup: int = T.warmup_steps,
    min_lr_ratio: float = T.min_lr_ratio,
    weight_decay: float = T.weight_decay,
    batch_size: int = T.batch_size,
    seq_len: int = T.seq_len,
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
    hidden_size stay None when automatic sizing is to choose them), checked before any work.
    The keywords are the CLI's options; an unknown one is a TypeError."""
    config = TrainConfig(
        batch_size=batch_size, seq_len=seq_len, lr=lr, min_lr_ratio=min_lr_ratio,
        warmup_steps=warmup, weight_decay=weight_decay, clip=clip, epochs=epochs,
        max_steps=max_steps, time_budget=parse_duration(time_budget), eval_every=eval_every,
        eval_tokens=eval_tokens, log_every=log_every, seed=seed, device=device,
        precision=precision,
    )  # fmt: skip
    options = dict(
        cell=cell, layers=layers, hidden_size=hidden, embed_size=embed, dropout=dropout,
        embed_dropout=embed_dropout, tie=tie, residual=residual,
    )  # fmt: skip
    options = resolve_size(size, options)
    ModelConfig(vocab_size=1, **complete(options))  # check the options before any work
    return config, options


def resolve_size(size: str, options: dict) -> dict:
    """Fill the model's layers and widths from --size; what the user gave always wins.

    With `--size auto` and no --layers/--hidden given, they stay None: the training run then
    measures this machine and chooses (rnngen/sizing.py). An --embed alone is kept as given.
    """
    from rnngen.sizing import SIZES

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
