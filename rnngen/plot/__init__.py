"""Figures: learning curves of runs, gradient flow, agreement.

matplotlib is imported only when a figure is drawn (Agg backend).

    runs.py      a run's files read back: metrics, its checkpoint's description, eval figures
    figures.py   the figures themselves, written atomically
"""

from importlib import import_module

# name -> the module of this package that defines it; imported on first use (PEP 562), so
# that importing one room of the package never pays for the others.
_FACE = {
    "Run": "runs",
    "load_run": "runs",
    "run_files": "runs",
    "curves_figure": "figures",
    "gradients_figure": "figures",
    "save_figure": "figures",
}
__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(import_module(f"{__name__}.{_FACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
