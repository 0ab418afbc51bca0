"""Text from a model: one sample token by token, or a batch whose rows come and go.

Both choose tokens the same way (filter_logits, TokenChooser), so a sample's text does not
depend on which of them made it.

    generate.py  SampleConfig, generate (pieces, then Done), the token chooser, the sources
    batch.py     SampleBatch: many samples stepped together (sample -n, the server)
"""

from importlib import import_module

# name -> the module of this package that defines it; imported on first use (PEP 562), so
# that importing one room of the package never pays for the others.
_FACE = {
    "SampleConfig": "generate",
    "Piece": "generate",
    "Done": "generate",
    "generate": "generate",
    "SampleBatch": "batch",
}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
