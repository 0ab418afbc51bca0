"""The network: the recurrent LM, the fixed-window LM built on it, and their state.

    rnn.py      RNNLM: embedding -> stacked LSTM/GRU/tanh-RNN (skips, AWD) -> (tied) output
    window.py   WindowLM: the fixed-window neural LM (Bengio et al. 2003), RNNLM's interface
    kinds.py    create_model(config): the kind the config names
    state.py    the recurrent state: its two layouts, its shape, its flat form on disk

Every module needs torch and they are small, so this face imports them all at once.
"""

from rnngen.model.kinds import create_model
from rnngen.model.rnn import RNNLM, count_parameters, keep_mask
from rnngen.model.state import (
    State,
    detach_state,
    group_state,
    reset_rows,
    sequence_state,
    state_from_tensors,
    state_layout,
    state_tensors,
    step_state,
)
from rnngen.model.window import WindowLM

__all__ = [
    "RNNLM",
    "State",
    "WindowLM",
    "count_parameters",
    "create_model",
    "detach_state",
    "group_state",
    "keep_mask",
    "reset_rows",
    "sequence_state",
    "state_from_tensors",
    "state_layout",
    "state_tensors",
    "step_state",
]
