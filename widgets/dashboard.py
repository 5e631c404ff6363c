"""Pseudo-label purity dashboard: per-epoch curves from the run's log, growing as epochs run.

NMI, ARI, pairwise precision / recall, clusters vs true identities, outliers, camera-split rate and
mAP, read from `RunState.history` (the trainer's log rows). Each panel is rendered once per new epoch
and kept as an image, so choosing panels only rearranges images; `save_figure` draws the chosen
panels as one figure (`purity_dashboard_figure`, the same plotting code).
"""
from __future__ import annotations

import html

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.runs import RunState
from lwtgpf.viz.workbench_figures import DASHBOARD_PANELS, figure_png, purity_dashboard_figure

from .base import FigureView

TABLE_KEYS = ("epoch", "nmi", "ari", "pairwise_precision", "pairwise_recall", "num_clusters", "num_true_ids",
              "outlier_fraction", "camera_split_rate", "mAP")


class PurityDashboard(FigureView):
    title = "pseudo-label purity"

    def __init__(self, state: RunState):
        self.panels = W.SelectMultiple(options=list(DASHBOARD_PANELS), value=tuple(DASHBOARD_PANELS),
                                       description="panels", rows=len(DASHBOARD_PANELS))
        self.table = W.HTML()
        self.panel_images = {name: W.Image(format="png") for name in DASHBOARD_PANELS}
        self.grid = W.GridBox(layout=W.Layout(grid_template_columns="repeat(3, max-content)"))
        self._rendered_for: tuple | None = None  # the history the panel images show
        super().__init__(state, [self.panels])
        controls, _, status = self.children
        self.children = (controls, self.grid, status, self.table)
        self.refresh()

    def _history_key(self) -> tuple:
        history = self.state.history
        return id(history), len(history), id(history[-1]) if history else None

    def render(self) -> None:
        history = self.state.history
        if self._history_key() != self._rendered_for:  # a new epoch: render every panel once
            for name, image in self.panel_images.items():
                image.value = figure_png(purity_dashboard_figure(history, [name], title=""))
            self.table.value = _history_table(history)
            self._rendered_for = self._history_key()
        self.figure = None  # the combined figure is drawn when asked for
        if not history:
            self.grid.children = [self.panel_images[next(iter(DASHBOARD_PANELS))]]  # "no epoch yet"
        else:
            self.grid.children = [self.panel_images[name] for name in self.panels.value]

    def current_figure(self) -> Figure:
        if self.figure is None:
            self.figure = self.draw()
        return self.figure

    def draw(self) -> Figure:
        return purity_dashboard_figure(self.state.history, self.panels.value)


def _history_table(history: list[dict]) -> str:
    if not history:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in TABLE_KEYS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(k))}</td>" for k in TABLE_KEYS) + "</tr>" for row in history
    )
    return f"<table style='font-size:11px'><tr>{head}</tr>{rows}</table>"


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))
