"""Figures: learning curves of runs, gradient flow, agreement.

matplotlib is imported only when a figure is drawn (Agg backend).

    runs.py      a run's files read back: metrics, its checkpoint's description, eval figures
    figures.py   the figures themselves, written atomically
"""

from rnngen.faces import lazy_names

# name -> the module of this package that defines it, imported on first use (rnngen.faces).
_FACE = {
    "Run": "runs",
    "load_run": "runs",
    "run_files": "runs",
    "curves_figure": "figures",
    "gradients_figure": "figures",
    "save_figure": "figures",
}
__all__ = sorted(_FACE)

__getattr__ = lazy_names(__name__, _FACE)
