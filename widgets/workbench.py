"""The Workbench: every view of one RunState in tabs, one epoch slider, one shared selection.

    bench = Workbench(RunState.from_run_dir("runs/demo/lwtgpf")); display(bench)

- The epoch slider moves the state's cursor (`RunState.go_to`); every view follows it. Clicking an
  epoch in the dashboard, the trajectory or the camera-pair curves moves the slider too.
- The selection (crops, a cluster or an identity), made with the mouse in any view, is shared: every
  view highlights it, and the bar above the tabs says what it is (`clear` empties it).
- A gallery or query crop clicked in the rank list opens in the attention view.
- Only the tab on screen redraws at once; the others redraw when shown (an epoch change costs one view).
A sweep tab opens on request (`open_sweep`).
"""
from __future__ import annotations

from pathlib import Path

import ipywidgets as W

from lwtgpf.workbench import UMAP_EPOCHS, RunState

from .attention import AttentionWindows
from .camera_pairs import CameraPairsView
from .dashboard import PurityDashboard
from .explorer import ClusterExplorer
from .lineage import LineageView
from .proxy_umap import ProxyUMAP
from .ranklist import RankList
from .selection import Selection
from .trajectory import TrajectoryView

# file name of each view's figure in save_figures(); also the Tab order
VIEWS = {
    "purity_dashboard": PurityDashboard,
    "cluster_explorer": ClusterExplorer,
    "proxy_umap": ProxyUMAP,
    "lineage": LineageView,
    "trajectory": TrajectoryView,
    "camera_pairs": CameraPairsView,
    "attention_windows": AttentionWindows,
    "rank_list": RankList,
}


class Workbench(W.VBox):
    """All views of `state`; `refresh()` after trainer.step(), `save_figures(folder)` writes one PNG per view."""

    def __init__(self, state: RunState, umap_epochs: int = UMAP_EPOCHS):
        self.state = state
        self.selection = Selection()
        self.epoch = W.SelectionSlider(options=state.epochs or [0], value=state.epoch, description="epoch",
                                       continuous_update=False, layout=W.Layout(width="480px"))
        self.selected = W.HTML()
        self.clear = W.Button(description="clear selection", layout=W.Layout(width="140px"))
        self.views = {}
        for name, view in VIEWS.items():
            kwargs = {"n_epochs": umap_epochs} if view is ProxyUMAP else {}
            self.views[name] = view(state, selection=self.selection, visible=False, **kwargs)
            self.views[name].on_epoch = self.go_to
        if "rank_list" in self.views:
            self.views["rank_list"].on_open = self.open_crop
        self.tab = W.Tab(children=list(self.views.values()))
        for i, view in enumerate(self.views.values()):
            self.tab.set_title(i, view.title)
        self.tab.observe(self._on_tab, names="selected_index")
        self.epoch.observe(self._on_epoch, names="value")
        self.clear.on_click(lambda _: self.selection.clear())
        self.selection.observe(lambda _: self._describe_selection(), names="revision")
        self._describe_selection()
        super().__init__([W.HBox([self.epoch, self.clear, self.selected]), self.tab])
        self._show_visible()

    # ---- the epoch cursor ------------------------------------------------------------------------
    def go_to(self, epoch: int) -> None:
        """Move every view to `epoch` (an epoch of `state.epochs`)."""
        if epoch != self.epoch.value:
            self.epoch.value = epoch  # -> _on_epoch
        else:
            self._on_epoch({"new": epoch})

    def _on_epoch(self, change) -> None:
        self.state.go_to(change["new"])
        for view in self.views.values():
            view.stale = True
        self._show_visible()

    # ---- tabs, selection, crops ------------------------------------------------------------------
    def _visible_view(self):
        return list(self.views.values())[self.tab.selected_index or 0]

    def _show_visible(self) -> None:
        if not self.views:
            return
        view = self._visible_view()
        if hasattr(view, "show"):
            view.show()

    def _on_tab(self, change) -> None:
        for index, view in enumerate(self.views.values()):
            if hasattr(view, "show"):
                view.show(index == change["new"])

    def _describe_selection(self) -> None:
        self.selected.value = self.selection.describe()

    def open_crop(self, split: str, index: int) -> None:
        """Show crop `index` of `split` in the attention view and bring that tab up."""
        attention = self.views["attention_windows"]
        attention.show_crop(split, index)
        self.tab.selected_index = list(self.views).index("attention_windows")

    def open_sweep(self, sources, metric: str = "mAP"):
        """Open a sweep folder (or run folders) in a "sweep" tab, added on first use; returns its SweepView."""
        from .sweep import SweepView

        if "sweep" not in self.views:
            self.views["sweep"] = SweepView(metric=metric)
            self.tab.children = (*self.tab.children, self.views["sweep"])
            self.tab.set_title(len(self.tab.children) - 1, SweepView.title)
        self.views["sweep"].load(sources)
        return self.views["sweep"]

    # ---- the run moved on ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Catch up with the run (a new epoch of a live trainer, a run folder still being written)."""
        self.state.sync()
        epochs = self.state.epochs or [0]
        if tuple(self.epoch.options) != tuple(epochs):
            with self.epoch.hold_trait_notifications():
                self.epoch.options = epochs
        if self.epoch.value != self.state.epoch:
            self.epoch.value = self.state.epoch
        for view in self.views.values():
            view.stale = True
        self._visible_view().refresh()

    def save_figures(self, folder: str | Path, dpi: int = 120) -> dict[str, Path]:
        """Write `<folder>/<view>.png` for every view (each drawn at the current epoch); {view name: path}."""
        folder = Path(folder)
        return {name: view.save_figure(folder / f"{name}.png", dpi=dpi) for name, view in self.views.items()}
