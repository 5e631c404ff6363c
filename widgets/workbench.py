"""The five views of one RunState in an ipywidgets Tab (and a sweep tab on request: `open_sweep`)."""
from __future__ import annotations

from pathlib import Path

import ipywidgets as W

from lwtgpf.runs import UMAP_EPOCHS, RunState

from .attention import AttentionWindows
from .dashboard import PurityDashboard
from .explorer import ClusterExplorer
from .proxy_umap import ProxyUMAP
from .ranklist import RankList

# file name of each view's figure in save_figures(); also the Tab order
VIEWS = {
    "purity_dashboard": PurityDashboard,
    "cluster_explorer": ClusterExplorer,
    "proxy_umap": ProxyUMAP,
    "attention_windows": AttentionWindows,
    "rank_list": RankList,
}


class Workbench(W.VBox):
    """All five views; `refresh()` refreshes each, `save_figures(folder)` writes one PNG per view."""

    def __init__(self, state: RunState, umap_epochs: int = UMAP_EPOCHS):
        self.state = state
        self.views = {
            name: (view(state, n_epochs=umap_epochs) if view is ProxyUMAP else view(state))
            for name, view in VIEWS.items()
        }
        self.tab = W.Tab(children=list(self.views.values()))
        for i, view in enumerate(self.views.values()):
            self.tab.set_title(i, view.title)
        super().__init__([self.tab])

    def open_sweep(self, sources, metric: str = "mAP"):
        """Open a sweep folder (or run folders) in a "sweep" tab, added on first use; returns its SweepView."""
        from .sweep import SweepView

        if "sweep" not in self.views:
            self.views["sweep"] = SweepView(metric=metric)
            self.tab.children = (*self.tab.children, self.views["sweep"])
            self.tab.set_title(len(self.tab.children) - 1, SweepView.title)
        self.views["sweep"].load(sources)
        return self.views["sweep"]

    def refresh(self) -> None:
        for view in self.views.values():
            view.refresh()

    def save_figures(self, folder: str | Path, dpi: int = 120) -> dict[str, Path]:
        """Write `<folder>/<view>.png` for every view; returns {view name: path}."""
        folder = Path(folder)
        return {name: view.save_figure(folder / f"{name}.png", dpi=dpi) for name, view in self.views.items()}
