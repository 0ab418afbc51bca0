"""The model a config describes: the recurrent LM, or the fixed-window LM built on it."""

from __future__ import annotations

from rnngen.config import ModelConfig
from rnngen.model.rnn import RNNLM
from rnngen.model.window import WindowLM


def create_model(config: ModelConfig) -> RNNLM:
    """A new model of the kind `config.model` names (rnn or window), with fresh weights."""
    return WindowLM(config) if config.model == "window" else RNNLM(config)
