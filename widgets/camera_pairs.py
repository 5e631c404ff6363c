"""Camera pairs: how often crops of camera a and camera b end in the same cluster, rightly (the same
person: recall per camera pair) and wrongly (different people), at the cursor epoch, and the
cross-camera recall over epochs: the thing camera-aware proxies are meant to raise.

With a selection, the matrices count the selected crops only (e.g. one identity's cameras). Click the
curves to go to an epoch.
"""
from __future__ import annotations

from matplotlib.figure import Figure

from lwtgpf.viz.history_figures import camera_pairs_figure
from lwtgpf.workbench import RunState, camera_pairs

from .base import FigureView
from .selection import Selection


class CameraPairsView(FigureView):
    title = "camera pairs"

    def __init__(self, state: RunState, selection: Selection | None = None, visible: bool = True):
        super().__init__(state, [], selection, visible)
        self.start()

    def draw(self, fig: Figure) -> None:
        state = self.state
        if not state.epochs:
            raise ValueError("no epoch stored yet: camera pairs appear after the first trainer.step()")
        picked = self.selection.indices
        if len(picked):
            pairs = camera_pairs(state.labels()[picked], state.train_pids[picked], state.train_camids[picked],
                                 state.dataset.num_cameras)
            scope = self.selection.describe()
        else:
            pairs, scope = state.camera_pairs(), "all train crops"
        camera_pairs_figure(pairs, state.camera_pair_series(), state.epoch,
                            f"camera pairs at epoch {state.epoch}, {scope}  ({state.source})", fig=fig)

    def on_click(self, event) -> None:
        curve = next((ax for ax in self.figure.axes if any(l.get_gid() == "epoch-curve" for l in ax.lines)), None)
        if event.inaxes is curve and curve is not None and event.xdata is not None:
            self.go_to_epoch(int(round(event.xdata)))
