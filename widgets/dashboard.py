"""Pseudo-label purity dashboard: per-epoch curves from the run's log; click an epoch to go there.

NMI, ARI, pairwise precision / recall, clusters vs true identities, outliers, camera-split rate and
mAP, read from `RunState.history` (the trainer's log rows), with the epoch cursor marked.
"""
from __future__ import annotations

import html

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.viz.workbench_figures import DASHBOARD_PANELS, purity_dashboard_figure
from lwtgpf.workbench import RunState

from .base import FigureView
from .selection import Selection

TABLE_KEYS = ("epoch", "nmi", "ari", "pairwise_precision", "pairwise_recall", "num_clusters", "num_true_ids",
              "outlier_fraction", "camera_split_rate", "mAP")


class PurityDashboard(FigureView):
    title = "pseudo-label purity"

    def __init__(self, state: RunState, selection: Selection | None = None, visible: bool = True):
        self.panels = W.SelectMultiple(options=list(DASHBOARD_PANELS), value=tuple(DASHBOARD_PANELS),
                                       description="panels", rows=len(DASHBOARD_PANELS))
        self.table = W.HTML()
        super().__init__(state, [self.panels], selection, visible)
        self.children = (*self.children, self.table)
        self.start()

    def draw(self, fig: Figure) -> None:
        history = self.state.history
        purity_dashboard_figure(history, self.panels.value, cursor=self.state.epoch or None, fig=fig)
        self.table.value = _history_table(history, self.state.epoch)

    def on_click(self, event) -> None:
        if event.inaxes is not None and event.xdata is not None:
            self.go_to_epoch(int(round(event.xdata)))


def _history_table(history: list[dict], cursor: int) -> str:
    if not history:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in TABLE_KEYS)
    rows = "".join(
        f"<tr{' style=background:#ffe0b2' if row.get('epoch') == cursor else ''}>"
        + "".join(f"<td>{_cell(row.get(k))}</td>" for k in TABLE_KEYS) + "</tr>" for row in history
    )
    return f"<table style='font-size:11px'><tr>{head}</tr>{rows}</table>"


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))
