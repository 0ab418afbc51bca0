"""Figures: learning curves of training runs and gradient-flow curves (never prints).

Drawn with matplotlib's object API (`Figure`, no pyplot), so no GUI backend, no global figure
state, and nothing is imported until a figure is asked for: `rnngen --help` stays fast. Files
are written whole or not at all (rnngen.atomic), in the format their extension names.

Every panel says what it shows and in which unit; the runs share one legend below the
panels, so a label never covers a curve.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngen.atomic import atomic_writer
from rnngen.errors import RnngenError
from rnngen.plot.runs import Run, load_run, unique_labels

__all__ = ["FORMATS", "Curve", "agreement_figure", "check_output", "curves_figure",
           "gradients_figure", "load_run", "norm_traces_figure", "save_figure",
           "unique_labels"]  # fmt: skip

FORMATS = ("png", "svg", "pdf")
DPI = 150
LEGEND_ROW_INCHES = 0.25  # a legend row of the default font, with its spacing
REFERENCE_STYLES = ("--", ":", "-.")


def check_output(path: Path) -> str:
    """The format of an image path (by extension); its directory must exist."""
    path = Path(path)
    extension = path.suffix.lower().lstrip(".")
    if extension not in FORMATS:
        raise RnngenError(f"cannot write {str(path)!r}: give a file ending in .png, .svg or .pdf")
    parent = path.parent
    if not parent.is_dir():
        raise RnngenError(
            f"cannot write {str(path)!r}: the directory {str(parent)!r} does not exist"
        )
    if path.is_dir():
        raise RnngenError(f"cannot write {str(path)!r}: it is a directory")
    return extension


def save_figure(figure, path: Path) -> Path:
    """Write `figure` to `path` atomically (a temporary file in the same directory, then a
    rename), so an interruption never leaves half an image."""
    import matplotlib
    from matplotlib.text import Text

    extension = check_output(path)
    for text in figure.findobj(Text):  # a name from a non-UTF-8 file name or option: escaped
        shown = text.get_text()
        if isinstance(shown, str) and not shown.isascii():
            text.set_text(shown.encode("utf-8", "backslashreplace").decode("utf-8"))
    # Text stays text in SVG (searchable, smaller); no creation date, so reruns are identical.
    metadata = {"Date": None} if extension in ("svg", "pdf") else {}
    style = {"svg.fonttype": "none", "svg.hashsalt": "rnngen"}
    with matplotlib.rc_context(style), atomic_writer(path, "wb") as file, warnings.catch_warnings():
        # The library never prints: a layout matplotlib cannot fit is still drawn, unannounced.
        warnings.filterwarnings("ignore", "constrained_layout not applied", UserWarning)
        figure.savefig(file, format=extension, dpi=DPI, metadata=metadata)
    return Path(path)


def _figure(width: float, height: float, rows: int, columns: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.grid(True, which="major", color="0.9", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _colours(n: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return [palette[i % len(palette)] for i in range(n)]


def curves_figure(runs: Sequence[Run], references: dict[str, float] | None = None):
    """Four panels: validation bits/char by step (with the training loss) and by training
    seconds, the gradient norm before clipping (log scale, clip bound and clipped steps),
    and the learning rate. Rollbacks are dotted vertical lines on the step panels."""
    figure, axes = _figure(12, 8, 2, 2)
    by_step, by_time, norms, rates = axes.flat
    colours = _colours(len(runs))
    for run, colour in zip(runs, colours, strict=True):
        train = run.train_bpc
        if train is not None and len(run.step):
            by_step.plot(run.step, train, color=colour, alpha=0.35, linewidth=1)
        if len(run.eval_step):
            by_step.plot(run.eval_step, run.eval_bpc, "o-", color=colour, markersize=3.5,
                         linewidth=1.8, label=run.label)  # fmt: skip
            by_time.plot(run.eval_seconds, run.eval_bpc, "o-", color=colour, markersize=3.5,
                         linewidth=1.8)  # fmt: skip
        elif len(run.step):  # no evaluation yet: the legend still names the run
            by_step.plot([], [], "o-", color=colour, label=run.label)
        _draw_norms(norms, run, colour)
        rates.plot(run.step, run.lr, color=colour, linewidth=1.5)
        for step in run.rollbacks:
            for ax in (by_step, norms, rates):
                ax.axvline(step, color=colour, linestyle=":", linewidth=1.2)
    _draw_references(figure, (by_step, by_time), runs, references or {})
    _limit_bpc((by_step, by_time), runs, references or {})
    by_step.set(title="Validation bits per character (faint: training loss)",
                xlabel="step", ylabel="bits per character")  # fmt: skip
    by_time.set(title="Validation bits per character by training time",
                xlabel="training seconds (evaluations excluded)",
                ylabel="bits per character")  # fmt: skip
    norms.set(title="Gradient norm before clipping", xlabel="step",
              ylabel="global L2 norm (log scale)")  # fmt: skip
    _readable_log_axis(norms)
    rates.set(title="Learning rate", xlabel="step", ylabel="learning rate")
    rates.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    for ax in (by_step, by_time, norms, rates):
        ax.set_xlim(left=0)
    _legend(figure, by_step, norms, runs)
    return figure


def _draw_norms(ax, run: Run, colour) -> None:
    if not len(run.step):
        return
    norm = np.where(run.grad_norm > 0, run.grad_norm, np.nan)  # a log axis has no 0
    ax.plot(run.step, norm, color=colour, linewidth=1.2)
    ax.set_yscale("log")
    if run.clip:
        ax.axhline(run.clip, color=colour, linestyle="--", linewidth=1)
        clipped = run.grad_norm > run.clip
        ax.plot(run.step[clipped], run.grad_norm[clipped], "v", color=colour, markersize=3.5,
                alpha=0.8)  # fmt: skip


def _readable_log_axis(ax) -> None:
    """Within two decades a log axis labels its ticks as 1.3x10^0; plain numbers read
    better there."""
    from matplotlib import ticker

    low, high = ax.get_ylim()
    if low > 0 and high / low < 100:
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _draw_references(figure, axes, runs: Sequence[Run], references: dict[str, float]) -> None:
    """Horizontal lines for the n-gram and oracle figures (eval's cache, or --reference)."""
    merged = dict(references)
    for run in runs:
        for name, value in run.references.items():
            key = name if len(runs) == 1 else f"{name}, {run.label}"
            merged.setdefault(key, value)
    for i, (name, value) in enumerate(sorted(merged.items(), key=lambda kv: -kv[1])):
        style = REFERENCE_STYLES[i % len(REFERENCE_STYLES)]
        label = f"{name}: {value:.3f} bits/char"
        for ax in axes:
            ax.axhline(value, color="0.35", linestyle=style, linewidth=1.2,
                       label=label if ax is axes[0] else None)  # fmt: skip


def _limit_bpc(axes, runs: Sequence[Run], references: dict[str, float]) -> None:
    """Leave out the first evaluations' plateau (often 3x the final value) from the range, so
    the part of the curve a reader compares fills the panel."""
    values = [v for r in runs for v in r.eval_bpc[len(r.eval_bpc) // 5 :] if math.isfinite(v)]
    values += [v for r in runs for v in r.references.values()] + list(references.values())
    if not values:
        return
    low, high = min(values), max(values)
    pad = max(0.08 * (high - low), 0.02 * high, 0.01)
    for ax in axes:
        ax.set_ylim(max(low - pad, 0), high + pad)


def _legend(figure, by_step, norms, runs: Sequence[Run]) -> None:
    from matplotlib.lines import Line2D

    handles, labels = by_step.get_legend_handles_labels()
    extra = []
    if any(r.clip for r in runs):
        extra.append((Line2D([], [], color="0.3", linestyle="--"), "clip bound (run's colour)"))
        extra.append((Line2D([], [], color="0.3", marker="v", linestyle=""), "clipped step"))
    if any(r.rollbacks for r in runs):
        extra.append((Line2D([], [], color="0.3", linestyle=":"), "rollback"))
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    _legend_below(figure, handles, labels, 3)


def _legend_below(figure, handles: list, labels: list[str], columns: int) -> None:
    """One legend below the panels, the figure made taller by its rows: constrained layout
    would otherwise shrink the panels to nothing for many runs (and matplotlib warn)."""
    if not handles:
        return
    rows = math.ceil(len(handles) / min(len(handles), columns))
    width, height = figure.get_size_inches()
    figure.set_size_inches(width, height + LEGEND_ROW_INCHES * max(rows - 2, 0))
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), columns),
                  frameon=False)  # fmt: skip


@dataclass(frozen=True)
class Curve:
    """One checkpoint's gradient flow, relative to lag 0 (nan where not measured)."""

    label: str
    lags: np.ndarray  # (K+1,) tokens back from the last token read
    input_relative: np.ndarray  # (K+1,)
    hidden_relative: np.ndarray  # (K+1,)


def gradients_figure(curves: Sequence[Curve], title: str | None = None, relative: bool = True):
    """Two log-scale panels: how much log p(x_t | x_<t) depends on the input embedding and on
    the hidden state k tokens earlier, one curve per checkpoint. With `relative` False the
    curves hold plain mean norms (a deep stack's k = 0 gradient may itself have vanished,
    which a ratio to it would hide)."""
    figure, axes = _figure(12, 4.8, 1, 2)
    inputs, hidden = axes.flat
    for curve, colour in zip(curves, _colours(len(curves)), strict=True):
        for ax, values in ((inputs, curve.input_relative), (hidden, curve.hidden_relative)):
            shown = np.where(
                values > 0, values, np.nan
            )  # exact zeros cannot be drawn on a log axis
            ax.plot(curve.lags, shown, color=colour, linewidth=1.8, label=curve.label)
    ylabel = "mean gradient norm" + (" relative to k = 0" if relative else "")
    for ax, what in ((inputs, "the input embedding"), (hidden, "the hidden state")):
        ax.set_yscale("log")
        ax.set_xlim(left=0)
        ax.set(title=f"... with respect to {what} k tokens back",
               xlabel="k (tokens back from the last token read)",
               ylabel=ylabel)  # fmt: skip
        _readable_log_axis(ax)
    figure.suptitle(title or r"How much $\log p(x_t \mid x_{<t})$ depends on what came earlier: "
                    "the gradient norm", fontsize="large")  # fmt: skip
    handles, labels = inputs.get_legend_handles_labels()
    _legend_below(figure, handles, labels, 4)
    return figure


def norm_traces_figure(runs: Sequence[Run]):
    """One panel per run, side by side on one log scale: the gradient norm before clipping
    at every logged step, the clip bound, clipped steps and rollbacks."""
    figure, axes = _figure(6 * len(runs), 4.2, 1, len(runs))
    for ax, run, colour in zip(axes.flat, runs, _colours(len(runs)), strict=True):
        _draw_norms(ax, run, colour)
        for step in run.rollbacks:
            ax.axvline(step, color="0.2", linestyle=":", linewidth=1.2)
        share = f", {run.clipped_share:.0%} of steps clipped" if run.clip else ""
        ax.set(title=f"{run.label}{share}", xlabel="step", ylabel="gradient norm (log scale)")
        ax.set_xlim(left=0)
    for ax in axes.flat[1:]:
        ax.sharey(axes.flat[0])
    _readable_log_axis(axes.flat[0])
    _legend(figure, axes.flat[0], axes.flat[0], runs)
    return figure


def agreement_figure(
    counts: dict[str, int],
    accuracy: dict[str, dict[str, float]],
    panels: dict[str, dict[str, dict[str, float]]] | None = None,
):
    """Subject-verb agreement accuracy by distance: one bar per model in each distance
    bucket, chance (50%) drawn, the number of items under each bucket. With `panels`
    (title -> accuracy), one panel each, side by side with the same axes (`accuracy` is then
    ignored); the items are the same in every panel."""
    panels = panels or {"Subject-verb agreement by distance": accuracy}
    figure, axes = _figure(12 if len(panels) == 1 else 7.5 * len(panels), 4.8, 1, len(panels))
    for ax, (title, values) in zip(axes.flat, panels.items(), strict=True):
        _agreement_panel(ax, counts, values, title, legend_below=len(panels) > 1)
    if len(panels) == 1:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right center", frameon=False)
    return figure


def _agreement_panel(ax, counts, accuracy, title: str, legend_below: bool) -> None:
    buckets, models = list(counts), list(accuracy)
    width = 0.8 / max(len(models), 1)
    for i, (model, colour) in enumerate(zip(models, _colours(len(models)), strict=True)):
        values = [100 * accuracy[model].get(b, float("nan")) for b in buckets]
        x = np.arange(len(buckets)) + (i - (len(models) - 1) / 2) * width
        ax.bar(x, values, width * 0.92, color=colour, label=model)
    ax.axhline(50, color="0.3", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(np.arange(len(buckets)),
                  [f"{b} words\n({counts[b]} items)" for b in buckets])  # fmt: skip
    ax.set(ylim=(0, 100), ylabel="right verb form preferred (%)",
           xlabel="distance from the subject to its verb", title=title)  # fmt: skip
    if legend_below:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, frameon=False)
