"""Cluster explorer: eps, min_samples, k1 and k2 sliders re-cluster the cursor epoch's features; click a
cluster's row to select it.

Re-clustering goes through `RunState.recluster` (lwtgpf.cluster's kNN, Jaccard and DBSCAN; the kNN and
the Jaccard distance are reused while k1 / k2 stay), then the label-quality metrics and the crops of
the purest and the most mixed clusters are shown, the current selection's crops on top.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from lwtgpf.cluster import PseudoLabels
from lwtgpf.viz.workbench_figures import (
    CORRECT_COLOUR,
    WRONG_COLOUR,
    ClusterExample,
    Tile,
    cluster_examples_figure,
    format_quality,
)
from lwtgpf.workbench import RunState, cluster_summaries

from .base import FigureView
from .selection import Selection

CROPS_PER_CLUSTER = 8


class ClusterExplorer(FigureView):
    title = "cluster explorer"

    def __init__(self, state: RunState, selection: Selection | None = None, visible: bool = True):
        c = state.cfg.cluster
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.eps = W.FloatSlider(value=c.eps, min=0.05, max=0.95, step=0.01, description="eps", **slider)
        self.min_samples = W.IntSlider(value=c.min_samples, min=1, max=30, description="min_samples", **slider)
        self.k1 = W.IntSlider(value=c.k1, min=2, max=max(60, c.k1), description="k1", **slider)
        self.k2 = W.IntSlider(value=c.k2, min=1, max=max(20, c.k2), description="k2", **slider)
        self.examples = W.IntSlider(value=3, min=1, max=8, description="examples", **slider)
        self.metrics = W.HTML()
        self.pseudo: PseudoLabels | None = None  # the labels shown now
        self.rows: list[tuple[int, np.ndarray]] = []  # (cluster, members) of each row drawn, top to bottom
        self.boxes: list = []
        self._pseudo_key = None
        super().__init__(state, [self.eps, self.min_samples, self.k1, self.k2, self.examples], selection, visible)
        self.children = (*self.children[:1], self.metrics, *self.children[1:])
        self.start()

    def settings(self) -> dict[str, float]:
        return dict(eps=self.eps.value, min_samples=self.min_samples.value, k1=self.k1.value, k2=self.k2.value)

    def at_run_settings(self) -> bool:
        c = self.state.cfg.cluster
        return self.settings() == dict(eps=c.eps, min_samples=c.min_samples, k1=c.k1, k2=c.k2)

    def current(self) -> PseudoLabels:
        """Pseudo labels at the slider settings: at the run's own settings, the labels the run trained on
        (its record; nothing to compute), else re-clustered (only when the settings or the epoch changed)."""
        if self.at_run_settings() and self.state.labels_are_kept():
            self.pseudo = self.state.pseudo_labels()
            self._pseudo_key = None
            return self.pseudo
        reclusterer, settings = self.state.reclusterer(), tuple(self.settings().values())
        if self._pseudo_key is None or self._pseudo_key[0] is not reclusterer or self._pseudo_key[1] != settings:
            self.pseudo = self.state.recluster(**self.settings())
            self._pseudo_key = (reclusterer, settings)
        return self.pseudo

    def draw(self, fig: Figure) -> None:
        state = self.state
        pseudo = self.current()
        quality = pseudo.quality or {}
        summaries = cluster_summaries(pseudo.labels, state.train_pids, state.train_camids)
        count = self.examples.value
        purest = summaries[:count]
        shown_already = {s.cluster for s in purest}
        mixed = [s for s in reversed(summaries) if s.cluster not in shown_already][:count]
        size = (state.cfg.data.height, state.cfg.data.width)
        examples, self.rows = [], []
        picked = self.selection.indices
        if len(picked):
            examples.append(self._example(f"selection\n{len(picked)} crops", picked, size))
            self.rows.append((-1, picked))
        for label, group in (("purest", purest), ("most mixed", mixed)):
            for summary in group:
                examples.append(self._example(
                    f"{label}\ncluster {summary.cluster}\n{len(summary.members)} crops, {summary.num_identities} ids\n"
                    f"purity {summary.purity:.2f}", summary.members, size))
                self.rows.append((summary.cluster, summary.members))
        if self._pseudo_key is None:
            how = f"the labels epoch {state.epoch} trained on (the run's settings: move a slider to re-cluster)"
        else:
            phases = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in pseudo.timings.items())
            how = (f"re-clustered the features of {state.features_source()}; ran: {phases}"
                   + ("" if "knn" in pseudo.timings else " (kNN reused)")
                   + ("" if "jaccard" in pseudo.timings else " (Jaccard distance reused)"))
        self.metrics.value = ("<b>" + html.escape("  ".join(format_quality(quality))) + "</b><br>"
                              + html.escape(f"{pseudo.proxies.num_proxies} proxies; {how}"))
        title = (f"eps {self.eps.value:.2f}, min_samples {self.min_samples.value}, k1 {self.k1.value}, "
                 f"k2 {self.k2.value}  ({state.source}, epoch {state.epoch}; click a row to select its cluster)")
        self.boxes = []
        cluster_examples_figure(quality, examples, title, fig=fig, boxes=self.boxes)

    def _example(self, title: str, members: np.ndarray, size) -> ClusterExample:
        state = self.state
        shown, majority = identities_first(members, state.train_pids)
        crops = [Tile(state.crop(state.dataset.train[i], size), f"id {state.train_pids[i]} c{state.train_camids[i] + 1}",
                      CORRECT_COLOUR if state.train_pids[i] == majority else WRONG_COLOUR)
                 for i in shown[:CROPS_PER_CLUSTER]]
        return ClusterExample(title, crops)

    def on_click(self, event) -> None:
        if event.inaxes is None or event.ydata is None:
            return
        rows = [row for row, _, _, y0, _, y1 in self.boxes if y0 <= event.ydata <= y1]
        if not rows or rows[0] >= len(self.rows):
            return
        cluster, members = self.rows[rows[0]]
        if cluster < 0:
            return
        if self.at_run_settings():
            self.selection.select_cluster(cluster, self.state.epoch, members, source="cluster explorer")
        else:
            self.selection.select_crops(members, source=f"cluster explorer (eps {self.eps.value:.2f})")


def identities_first(members: np.ndarray, pids: np.ndarray) -> tuple[np.ndarray, int]:
    """(members reordered round-robin over their identities, most frequent identity first; that identity),
    so that the first crops of a mixed cluster show each identity in it."""
    ids, inverse, counts = np.unique(pids[members], return_inverse=True, return_counts=True)
    by_size = np.argsort(-counts, kind="stable")  # identity order: largest first (smallest pid on a tie)
    position = np.empty(len(ids), dtype=np.int64)
    position[by_size] = np.arange(len(ids))
    # k-th crop of an identity gets round k; within a round, the identity order
    round_of = np.zeros(len(members), dtype=np.int64)
    for identity in range(len(ids)):
        mine = np.flatnonzero(inverse == identity)
        round_of[mine] = np.arange(len(mine))
    order = np.lexsort((position[inverse], round_of))
    return members[order], int(ids[by_size[0]])
