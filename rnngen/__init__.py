"""rnngen: recurrent language models from the command line and from Python.

    import rnngen
    lm = rnngen.load("checkpoints/synth.safetensors")     # LanguageModel
    lm.generate(...), lm.score(...), rnngen.compare(lm), rnngen.tokenize(...), rnngen.train(...)

The API is imported on first use (PEP 562), so `import rnngen` and `rnngen --help` stay fast
and never import torch.
"""

from rnngen.faces import lazy_names

__version__ = "0.1.0"

_API = {
    "load": "rnngen.api",
    "compare": "rnngen.api",
    "tokenize": "rnngen.api",
    "export": "rnngen.api",
    "neighbors": "rnngen.api",
    "LanguageModel": "rnngen.api",
    "LineScore": "rnngen.api",
    "train": "rnngen.api",
    "synth": "rnngen.api",
    "info": "rnngen.api",
    "plot": "rnngen.api",
    "DynamicConfig": "rnngen.api",
    "GradientResult": "rnngen.api",
    "NGramReport": "rnngen.api",
    "ComparisonReport": "rnngen.scoring.report",
    "Provenance": "rnngen.corpus.provenance",
    "RnngenError": "rnngen.errors",
    "gradients": "rnngen.api",
}
# rnngen.api.ngram is not here: `rnngen.ngram` names a package of rnngen, which an import
# sets as an attribute over any name given here.
__all__ = ["__version__", *_API]


__getattr__ = lazy_names(__name__, _API)
