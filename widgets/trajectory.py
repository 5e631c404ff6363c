"""The trajectory of one identity (or of one cluster's crops) through every stored epoch: how many
clusters its crops span, whether those clusters are camera-pure, how many are outliers.

It follows the shared selection (an identity, a cluster, or crops); with nothing selected, the
`identity` control lists the identities the cursor epoch splits most. Click a bar to go to its epoch.
"""
from __future__ import annotations

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.viz.history_figures import trajectory_figure
from lwtgpf.workbench import RunState

from .base import FigureView
from .selection import Selection


class TrajectoryView(FigureView):
    title = "trajectory"

    def __init__(self, state: RunState, selection: Selection | None = None, visible: bool = True):
        self.identity = W.Dropdown(options=[("-", -1)], value=-1, description="identity",
                                   style={"description_width": "initial"}, layout=W.Layout(width="420px"))
        super().__init__(state, [self.identity], selection, visible)
        self.start()

    def sync_controls(self) -> None:
        worst = self.state.worst_identities(count=20) if self.state.epochs else []
        options = [(f"id {i}: {n} clusters, {100 * share:.0f}% in its largest", i) for i, n, share in worst]
        chosen = self.selection.identity
        if chosen >= 0 and chosen not in [i for _, i in options]:
            options.insert(0, (f"id {chosen} (selected)", chosen))
        options = options or [("-", -1)]
        if tuple(self.identity.options) != tuple(options):
            self.identity.options = options
        if chosen >= 0:
            self.identity.value = chosen

    def _on_control(self, change) -> None:
        if self._quiet or change["owner"] is not self.identity or change["new"] is None or change["new"] < 0:
            return super()._on_control(change)
        identity = int(change["new"])  # choosing an identity selects it everywhere
        self.selection.select_identity(identity, self.state.identity_crops(identity), source="trajectory")

    def group(self) -> tuple[str, object]:
        """(what is followed, its train indices)."""
        selection = self.selection
        if selection.identity >= 0:
            return f"identity {selection.identity}", self.state.identity_crops(selection.identity)
        if selection.cluster >= 0:
            return f"the crops of cluster {selection.cluster} (epoch {selection.epoch})", selection.indices
        if len(selection.crops):
            return f"the {len(selection.crops)} selected crops", selection.indices
        identity = self.identity.value
        return f"identity {identity} (the most split at epoch {self.state.epoch})", self.state.identity_crops(identity)

    def draw(self, fig: Figure) -> None:
        if not self.state.epochs:
            raise ValueError("no epoch stored yet: the trajectory appears after the first trainer.step()")
        with self.quietly():
            self.sync_controls()
        what, members = self.group()
        if not len(members):
            raise ValueError(f"{what} has no crop in the train split")
        steps = self.state.trajectory(members)
        title = f"{what}: {len(members)} crops through epochs {steps[0].epoch}..{steps[-1].epoch}  ({self.state.source})"
        trajectory_figure(steps, title, cursor=self.state.epoch, fig=fig)

    def on_click(self, event) -> None:
        if event.inaxes is not None and event.xdata is not None:
            self.go_to_epoch(int(round(event.xdata)))
