"""Cluster lineage between two epochs: which clusters were kept, split, merged, dissolved or appeared
(counts, and an alluvial flow of the largest events). Click a cluster on either side to select it.

Epoch a is the Workbench's cursor, epoch b the `with epoch` control (the two are put in time order);
the selected cluster (or the clusters holding the selected crops) is framed and its flows emphasised.
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from lwtgpf.viz.history_figures import lineage_figure
from lwtgpf.workbench import RunState

from .base import FigureView
from .selection import Selection


class LineageView(FigureView):
    title = "lineage"

    def __init__(self, state: RunState, selection: Selection | None = None, visible: bool = True):
        self.other = W.Dropdown(options=[0], value=0, description="with epoch")
        self.clusters = W.IntSlider(value=10, min=3, max=30, description="clusters", continuous_update=False)
        super().__init__(state, [self.other, self.clusters], selection, visible)
        self.start()

    def epochs(self) -> tuple[int, int]:
        a, b = self.state.epoch, self.other.value
        return (a, b) if a <= b else (b, a)

    def sync_controls(self) -> None:
        epochs = self.state.epochs
        cursor = self.state.epoch
        options = [e for e in epochs if e != cursor] or [cursor]
        value = self.other.value
        if value not in options or value == cursor:  # default: the next epoch, else the previous one
            later = [e for e in options if e > cursor]
            value = later[0] if later else options[-1]
        if tuple(self.other.options) != tuple(options):
            self.other.options = options
        self.other.value = value

    def _highlights(self, epoch: int) -> list[int]:
        selection = self.selection
        if selection.cluster >= 0 and selection.epoch == epoch:
            return [selection.cluster]
        picked = selection.indices
        if not len(picked):
            return []
        labels = self.state.labels(epoch)[picked]
        clusters, counts = np.unique(labels[labels >= 0], return_counts=True)
        return clusters[np.argsort(-counts)][:5].tolist()

    def draw(self, fig: Figure) -> None:
        a, b = self.epochs()
        if a == b:
            raise ValueError("the lineage needs two epochs; this run has stored one")
        lineage = self.state.lineage(a, b)
        title = (f"cluster lineage, epoch {a} -> {b}  ({self.state.source}; {self.selection.describe()})")
        lineage_figure(lineage, title, max_clusters=self.clusters.value, highlight_a=self._highlights(a),
                       highlight_b=self._highlights(b), fig=fig)

    def on_pick(self, event) -> None:
        gid = event.artist.get_gid() or ""
        side, _, cluster = gid.partition(":")
        if side not in ("a", "b") or not cluster.lstrip("-").isdigit() or int(cluster) < 0:
            return
        epoch = self.epochs()[0 if side == "a" else 1]
        cluster = int(cluster)
        self.selection.select_cluster(cluster, epoch, self.state.cluster_crops(cluster, epoch), source="lineage")
