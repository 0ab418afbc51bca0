"""Text from a model: one sample token by token, or a batch whose rows come and go.

Both choose tokens the same way (filter_logits, TokenChooser), so a sample's text does not
depend on which of them made it.

    generate.py  SampleConfig, generate (pieces, then Done), the token chooser, the sources
    batch.py     SampleBatch: many samples stepped together (sample -n, the server)
"""

from rnngen.faces import lazy_names

# name -> the module of this package that defines it, imported on first use (rnngen.faces).
_FACE = {
    "SampleConfig": "generate",
    "Piece": "generate",
    "Done": "generate",
    "generate": "generate",
    "SampleBatch": "batch",
}
__all__ = sorted(_FACE)

__getattr__ = lazy_names(__name__, _FACE)
