"""Learning curves as a figure: `plot` (what `rnngen plot` does), with the CLI's defaults."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rnngen.arguments import checked


@dataclass(frozen=True)
class PlotResult:
    path: Path  # the image written
    runs: list  # rnngen.plot.runs.Run, each with `label` and `skipped_lines` (torn records)
    sources: list  # the path each run was read from


@checked(rename={"-o": "output"})
def plot(
    runs: Iterable[str] | None = None,
    output: str | Path | None = None,
    *,
    references: dict | None = None,
) -> PlotResult:
    """What `rnngen plot` does: the learning curves of `runs` (checkpoints or metrics files;
    default the newest checkpoint in ./checkpoints) overlaid in one PNG, SVG or PDF at
    `output` (default NAME.png beside the first run). `references` ({name: bits per char})
    adds horizontal lines beside the n-gram and oracle ones `rnngen eval` cached."""
    from rnngen.checkpoint import latest_checkpoint
    from rnngen.plot.figures import check_output, curves_figure, save_figure, unique_labels
    from rnngen.plot.runs import load_run, run_files
    from rnngen.run_paths import figure_path

    paths = [Path(p) for p in runs or []] or [latest_checkpoint()]
    if output is None:
        _, metrics = run_files(paths[0])
        output = figure_path(metrics)
    output = Path(output)
    check_output(output)  # before reading anything: a bad path fails at once
    loaded = [load_run(path) for path in paths]
    unique_labels(loaded)
    save_figure(curves_figure(loaded, dict(references or {})), output)
    return PlotResult(output, loaded, paths)
