"""A training run: `train` (what `rnngen train` does), its events through `on_event`."""

from rnngen.training import train

__all__ = ["train"]
