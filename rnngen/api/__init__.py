"""The Python API, the one door into the library: what the CLI does, as calls that return
values and never print. The CLI (`rnngen/cli/`) reaches the library through these names only.

    lm = load("checkpoints/synth.safetensors")       # LanguageModel, device="auto"
    "".join(lm.generate("the man", max_tokens=50, seed=1))
    lm.sample("the man", n=3, seed=1)                # Sampling: Piece(i, text) ..., Done(i, ...)
    lm.score(["a line", "another"])                   # [LineScore(text, tokens, logprob, ppl)]
    compare(lm, data="valid.txt", ngram_order=5)      # ComparisonReport: the eval table as data
    tokenize("corpus.txt", "tokenized/corpus")        # TokenizedCorpus, as `rnngen tokenize`
    train("corpus.txt", time_budget="3m")             # TrainResult, as `rnngen train`
    export(lm.path, "export/synth")                   # ExportResult, as `rnngen export`
    neighbors(lm, ["king", "queen"], k=10)            # [WordNeighbors], as `rnngen neighbors`

`rnngen/__init__.py` imports this package on first use, so `import rnngen` stays torch-free.
Each module below is one room of the door: language_model (a loaded checkpoint), evaluation
(the eval table), corpus (text to ids), training (a run), export (a model taken elsewhere).
"""

from rnngen.api.corpus import Info, info, synth, tokenize
from rnngen.api.evaluation import compare
from rnngen.api.export import export, neighbors
from rnngen.api.figures import PlotResult, plot
from rnngen.api.language_model import LanguageModel, load, score_line
from rnngen.api.sampling import Sampling, sampler
from rnngen.api.training import *  # noqa: F403 (train, its events, bits and perplexity)
from rnngen.line_scoring import LineScore
from rnngen.sample import Done, Piece

__all__ = ["LanguageModel", "LineScore", "compare", "export", "load", "neighbors",
           "score_line", "tokenize"]  # fmt: skip
__all__ += ["Done", "Piece", "Sampling", "sampler"]  # sampling
__all__ += ["Info", "info", "synth"]  # api/corpus.py (with tokenize)
__all__ += ["PlotResult", "plot"]  # api/figures.py
__all__ += training.__all__  # noqa: F405 (api/training.py: train, its events, bits, perplexity)
