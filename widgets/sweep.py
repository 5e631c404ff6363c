"""The sweep view: a sweep (or run folders) compared in a widget, the workbench's "sweep" tab.

    view = SweepView("runs/eps-sweep")         # or Workbench(state).open_sweep("runs/eps-sweep")
    display(view)                              # folder box + open, metric menu, table, bars, curves

Everything it shows comes from `lwtgpf.experiments.compare.compare` (run folders read through RunFolder)
and the pure matplotlib figures of `lwtgpf.viz.compare_figures`, so a headless run saves the same
figures (`save_figure`, or `lwtgpf compare SWEEP --out ...`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.experiments.compare import CURVE_METRICS, Comparison, compare
from lwtgpf.viz.compare_figures import curves_figure, final_metric_figure, save_figure
from lwtgpf.viz.workbench_figures import figure_png, message_figure


class SweepView(W.VBox):
    """Compare a sweep folder (or run folders, `;`-separated in the box): the summary table (mean ± std
    over seeds, marks of the seed-spread rule), the chosen metric per group with every seed, and the
    per-epoch curves. `load(sources)` (or the button) reads the folders again; `refresh()` re-reads them
    (jobs may have finished since); `save_figure(path)` writes the curves figure."""

    title = "sweep"

    def __init__(self, sources: str | Path | Sequence[str | Path] = (), metric: str = "mAP"):
        self.comparison: Comparison | None = None
        self.figure: Figure | None = None
        self.folder = W.Text(value=_joined(sources), placeholder="a sweep folder, or run folders separated by ;",
                             description="folders", layout=W.Layout(width="60%"))
        self.open_button = W.Button(description="open", button_style="primary")
        self.metric = W.Dropdown(options=[metric], value=metric, description="metric")
        self.table = W.HTML()
        self.bars = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.status = W.HTML()
        self.open_button.on_click(lambda _: self.load())
        self.metric.observe(lambda _: self._draw_bars(), names="value")
        super().__init__([W.HBox([self.folder, self.open_button, self.metric]), self.table, self.bars, self.image,
                          self.status])
        if self.folder.value:
            self.load()

    def load(self, sources: str | Path | Sequence[str | Path] | None = None) -> Comparison | None:
        """Compare `sources` (default: the folders in the box); a failure is shown in place of the figures."""
        if sources is not None:
            self.folder.value = _joined(sources)
        paths = [p.strip() for p in self.folder.value.split(";") if p.strip()]
        try:
            self.comparison = compare(paths)
        except (ValueError, OSError) as error:  # UserError is a ValueError: say it, keep the widget
            self.comparison = None
            self.figure = message_figure(f"{type(error).__name__}: {error}")
            self.image.value = figure_png(self.figure)
            self.table.value = ""
            self.bars.value = b""
            self.status.value = f"<span style='color:#c62828'>{type(error).__name__}: {error}</span>"
            return None
        result = self.comparison
        shown = [m for m in result.metrics if m in result.runs]
        current = self.metric.value if self.metric.value in shown else (shown[0] if shown else self.metric.value)
        self.metric.options = shown or [current]
        self.metric.value = current
        self.table.value = result.table[["group", "n", "not_done", *_metric_columns(result)]].to_html(
            index=False, float_format=lambda v: f"{v:.3g}", na_rep="-")
        self.figure = curves_figure(result.curves, "group", CURVE_METRICS)
        self.image.value = figure_png(self.figure)
        self._draw_bars()
        done = int((result.runs["status"] == "done").sum())
        self.status.value = (f"{len(result.table)} group(s), {done} finished run(s) of {len(result.runs)}; "
                             f"grouped by {', '.join(result.keys) or 'nothing (one group)'}")
        return result

    def refresh(self) -> None:
        """Read the folders again (a running sweep's jobs finish one by one)."""
        self.load()

    def current_figure(self) -> Figure:
        if self.figure is None:
            self.load()
        return self.figure

    def save_figure(self, path: str | Path, dpi: int = 120) -> Path:
        """Write the curves figure (what the view shows under the table) as a PNG file."""
        return save_figure(self.current_figure(), path, dpi=dpi)

    def _draw_bars(self) -> None:
        result = self.comparison
        if result is None or self.metric.value not in result.runs:
            return
        done = result.runs[result.runs["status"] == "done"]
        self.bars.value = figure_png(final_metric_figure(done, "group", self.metric.value))


def _metric_columns(result: Comparison) -> list[str]:
    columns = []
    for metric in result.metrics:
        columns += [c for c in (metric, f"{metric}_std", f"{metric}_vs_best") if c in result.table]
    return columns


def _joined(sources: str | Path | Sequence[str | Path]) -> str:
    if isinstance(sources, (str, Path)):
        return str(sources)
    return "; ".join(str(s) for s in sources)
