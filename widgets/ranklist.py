"""Rank list: a query and its top-k gallery crops, correct (same person) green, wrong red, cameras shown.

The mouse: click a gallery crop to open it in the attention view (`on_open`, wired by the Workbench).
Selecting an identity elsewhere shows one of its queries; gallery crops of the selected identity are
starred. The ranking is the evaluation's own (`RunState.ranking`: re-ranked when the run's config says
eval.rerank), of the cursor epoch's test features when the run kept them.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from lwtgpf.viz.workbench_figures import CORRECT_COLOUR, WRONG_COLOUR, Tile, rank_list_figure
from lwtgpf.run_folder import RANKED_LIST_LENGTH
from lwtgpf.workbench import RunState

from .base import FigureView
from .selection import Selection

MAX_K = RANKED_LIST_LENGTH  # what a run folder keeps per query and epoch


class RankList(FigureView):
    title = "rank list"

    def __init__(self, state: RunState, query: int = 0, k: int = 10, selection: Selection | None = None, visible: bool = True):
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
        self.query = W.BoundedIntText(value=query, min=0, max=max(len(state.dataset.query) - 1, 0),
                                      description="query")
        self.k = W.IntSlider(value=k, min=1, max=MAX_K, description="top k", continuous_update=False)
        self.on_open: Callable[[str, int], None] | None = None  # (split, index) of a clicked crop
        self.boxes: list = []
        self.ranked = None
        super().__init__(state, [self.query, self.k], selection, visible)
        self.start()

    def current(self):
        """The RankList of the chosen query, cut to k."""
        return self.state.rank_list(self.query.value, MAX_K), self.k.value

    def redraw(self) -> None:
        identity = self.selection.identity
        if identity >= 0 and self.state.dataset.query[self.query.value].pid != identity:
            queries = [i for i, r in enumerate(self.state.dataset.query) if r.pid == identity]
            if queries:
                with self.quietly():
                    self.query.value = queries[0]
        super().redraw()

    def on_click(self, event) -> None:
        if event.inaxes is None or event.xdata is None or self.ranked is None:
            return
        hits = [index for _, index, x0, y0, x1, y1 in self.boxes
                if x0 <= event.xdata <= x1 and y0 <= event.ydata <= y1]
        if not hits:
            return
        split, index = ("query", self.ranked.query_index) if hits[0] == 0 else \
            ("gallery", int(self.ranked.gallery_index[hits[0] - 1]))
        if self.on_open is not None:
            self.on_open(split, index)

    def draw(self, fig: Figure) -> None:
        state = self.state
        ranked, k = self.current()
        self.ranked = ranked
        size = (state.cfg.data.height, state.cfg.data.width)
        chosen = self.selection.identity
        query = Tile(state.crop(ranked.query, size), f"query\nid {ranked.query.pid} cam {ranked.query.camid + 1}",
                     "#212121")
        gallery = [
            Tile(state.crop(record, size), f"{rank + 1}: id {record.pid}{' *' if record.pid == chosen else ''}"
                                           f"\ncam {record.camid + 1} d {dist:.2f}",
                 CORRECT_COLOUR if ok else WRONG_COLOUR)
            for rank, (record, dist, ok) in enumerate(zip(ranked.gallery[:k], ranked.distance[:k],
                                                          ranked.correct[:k]))
        ]
        mAP = state.ranking(MAX_K)["mAP"]
        title = (f"query {ranked.query_index}: AP {ranked.average_precision:.3f}, "
                 f"{int(np.sum(ranked.correct[:k]))}/{len(gallery)} correct in the top {k}; all queries mAP {mAP:.3f}"
                 f"\n({state.source}, epoch {state.epoch}, test features of {state.test_source()}; click a crop to "
                 "see its attention)")
        self.boxes = []
        rank_list_figure(query, gallery, title, fig=fig, boxes=self.boxes)
