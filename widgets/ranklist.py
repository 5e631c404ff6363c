"""Rank list: a query and its top-k gallery crops, correct (same person) green, wrong red, cameras shown.

The query/gallery features and the top-`MAX_K` lists of every query are computed once per epoch
(`RunState.ranking`); choosing a query or k only redraws.
"""
from __future__ import annotations

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.runs import RunState
from lwtgpf.viz.workbench_figures import CORRECT_COLOUR, WRONG_COLOUR, Tile, rank_list_figure

from .base import FigureView

MAX_K = 20


class RankList(FigureView):
    title = "rank list"

    def __init__(self, state: RunState, query: int = 0, k: int = 10):
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
        self.query = W.BoundedIntText(value=query, min=0, max=max(len(state.dataset.query) - 1, 0),
                                      description="query")
        self.k = W.IntSlider(value=k, min=1, max=MAX_K, description="top k", continuous_update=False)
        super().__init__(state, [self.query, self.k])
        self.refresh()

    def current(self):
        """The RankList of the chosen query, cut to k."""
        ranked = self.state.rank_list(self.query.value, MAX_K)
        return ranked, self.k.value

    def draw(self) -> Figure:
        state = self.state
        ranked, k = self.current()
        size = (state.cfg.data.height, state.cfg.data.width)
        query = Tile(state.crop(ranked.query, size), f"query\nid {ranked.query.pid} cam {ranked.query.camid + 1}",
                     "#212121")
        gallery = [
            Tile(state.crop(record, size), f"{rank + 1}: id {record.pid}\ncam {record.camid + 1} d {dist:.2f}",
                 CORRECT_COLOUR if ok else WRONG_COLOUR)
            for rank, (record, dist, ok) in enumerate(zip(ranked.gallery[:k], ranked.distance[:k],
                                                          ranked.correct[:k]))
        ]
        mAP = state.ranking(MAX_K)["mAP"]
        title = (f"query {ranked.query_index}: AP {ranked.average_precision:.3f}, "
                 f"{int(ranked.correct[:k].sum())}/{len(gallery)} correct in the top {k}; all queries mAP {mAP:.3f}"
                 f"  ({state.source}, epoch {state.epoch})")
        return rank_list_figure(query, gallery, title)
