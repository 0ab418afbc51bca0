"""The Python API, the one door into the library: what the CLI does, as calls that return
values and never print. The CLI (`rnngen/cli/`) reaches the library through these names only.

    lm = load("checkpoints/synth.safetensors")       # LanguageModel, device="auto"
    "".join(lm.generate("the man", max_tokens=50, seed=1))
    lm.sample("the man", n=3, seed=1)                # Sampling: Piece(i, text) ..., Done(i, ...)
    lm.score(["a line", "another"])                   # [LineScore(text, tokens, logprob, ppl)]
    lm.scores(open("lines.txt"), mix="fit")           # LineScores streamed, as `rnngen score`
    compare(lm, data="valid.txt", ngram_order=5)      # ComparisonReport: the eval table as data
    gradients(["a.safetensors", "b.safetensors"])     # [GradientResult], as `rnngen gradients`
    ngram("train.txt", "test.txt", order=5)           # NGramReport, as `rnngen ngram`
    tokenize("corpus.txt", "tokenized/corpus")        # TokenizedCorpus, as `rnngen tokenize`
    train("corpus.txt", time_budget="3m")             # TrainResult, as `rnngen train`
    export(lm.path, "export/synth")                   # ExportResult, as `rnngen export`
    neighbors(lm, ["king", "queen"], k=10)            # [WordNeighbors], as `rnngen neighbors`

`rnngen/__init__.py` imports this package on first use, so `import rnngen` stays torch-free.
Each module below is one room of the door: language_model (a loaded checkpoint), evaluation
(the eval table), corpus (text to ids), training (a run), export (a model taken elsewhere).
"""

from rnngen import __version__
from rnngen.api.corpus import Info, info, synth, tokenize
from rnngen.api.cpu_threads import computing
from rnngen.api.evaluation import (
    check_gradient_options,
    compare,
    gradients,
    ngram,
    plot_gradients,
    read_lines,
)
from rnngen.api.export import export, neighbors
from rnngen.api.figures import PlotResult, plot
from rnngen.api.language_model import LanguageModel, load, score_line
from rnngen.api.sampling import Sampling, read_stdin_text, sample, sampler
from rnngen.api.training import *  # noqa: F403 (train, its events, bits and perplexity)
from rnngen.faces import lazy_names
from rnngen.sampling.generate import Done, Piece
from rnngen.scoring.baseline import check_order, memory_budget
from rnngen.scoring.lines import LineScore, line_options
from rnngen.scoring.mixture_weight import parse_mix
from rnngen.scoring.ngram_eval import NGramReport
from rnngen.threads import plan_threads

__all__ = ["LanguageModel", "LineScore", "compare", "export", "load", "neighbors",
           "score_line", "tokenize"]  # fmt: skip
__all__ += ["Done", "Piece", "Sampling", "read_stdin_text", "sample", "sampler"]  # sampling
__all__ += ["Info", "info", "synth"]  # api/corpus.py (with tokenize)
__all__ += ["PlotResult", "plot"]  # api/figures.py
__all__ += training.__all__  # noqa: F405 (api/training.py: train, its events, bits, perplexity)
__all__ += ["NGramReport", "gradients", "ngram", "plot_gradients", "read_lines"]
# Option checks the CLI makes before any work (the calls above make them too): one each.
__all__ += [
    "check_gradient_options",
    "check_order",
    "line_options",
    "memory_budget",
    "parse_mix",
    "plan_threads",
]
__all__ += ["__version__", "computing"]  # the CLI's --version; its commands' threads

# Names whose modules import torch (or the server's starlette), loaded on first use (PEP 562)
# so that `import rnngen.api` stays light: `rnngen tokenize`, `synth` and `--help` never pay
# for torch.
_LAZY = {"ComparisonReport": "rnngen.scoring.report",
         "DynamicConfig": "rnngen.scoring.dynamic",
         "GradientResult": "rnngen.scoring.gradients",
         "resolve_device": "rnngen.hardware"}  # fmt: skip
_LAZY |= {name: "rnngen.api.serving"  # `rnngen serve`
          for name in ("Limits", "listen", "load_models", "run_server", "server",
                       "server_logging")}  # fmt: skip
__all__ += list(_LAZY)


__getattr__ = lazy_names(__name__, _LAZY)
