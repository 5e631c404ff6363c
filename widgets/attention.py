"""Attention windows: a crop, a stage, a block, a head and a query token; the window grid and the attention.

The mouse: click a token on either image to make it the query token. A crop selected alone anywhere
(a point in the UMAP) or clicked in the rank list (`show_crop`) opens here. Changing the crop runs one
forward pass (cached per crop and epoch); stage, block, head and query only redraw. With kept weights
(`train.keep_weights`) the attention is that of the cursor epoch's model, else of the final model.
"""
from __future__ import annotations

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.viz.workbench_figures import attention_figure, message_figure
from lwtgpf.workbench import SPLITS, RunState

from .base import FigureView
from .selection import Selection


class AttentionWindows(FigureView):
    title = "attention windows"

    def __init__(self, state: RunState, split: str = "query", index: int = 0, selection: Selection | None = None, visible: bool = True):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        try:
            self.blocks = state.attention_blocks()
            self.unsupported = ""
        except ValueError as error:  # e.g. a ResNet run: the view explains instead of failing
            self.blocks, self.unsupported = (), str(error)
        stages = sorted({s for s, _ in self.blocks}) or [0]
        self.split = W.Dropdown(options=list(SPLITS), value=split, description="split")
        self.crop = W.BoundedIntText(value=index, min=0, max=max(len(state.dataset.split(split)) - 1, 0),
                                     description="crop")
        self.stage = W.Dropdown(options=stages, value=stages[0], description="stage")
        self.block = W.Dropdown(options=[0], value=0, description="block")
        self.head = W.Dropdown(options=[("mean", -1)], value=-1, description="head")
        self.row = W.IntSlider(value=0, min=0, max=0, description="query row", continuous_update=False)
        self.col = W.IntSlider(value=0, min=0, max=0, description="query col", continuous_update=False)
        branches = [("b1", 0), ("b2", 1)] if hasattr(state.model, "branches") else [("-", 0)]
        self.branch = W.Dropdown(options=branches, value=0, description="last stage")
        super().__init__(state, [self.split, self.crop, self.stage, self.block, self.head, self.row, self.col,
                                 self.branch], selection, visible)
        self._centred = False  # the query token starts in the middle of the grid, once the crop is known
        self.start()

    def current(self):
        """The CropAttention of the chosen crop (computed on first use)."""
        return self.state.attention(self.split.value, self.crop.value, branch=self.branch.value)

    def show_crop(self, split: str, index: int) -> None:
        """Open crop `index` of `split` (the query token stays where it is, within the new grid)."""
        with self.quietly():
            self.split.value = split
            self.sync_controls()
            self.crop.value = index
            self.sync_controls()
        self.redraw()

    def on_selection(self) -> None:
        picked = self.selection.crops
        if len(picked) == 1:  # a crop selected alone elsewhere opens here
            self.show_crop("train", picked[0])
        else:
            self.redraw()

    def sync_controls(self) -> None:
        self.crop.max = max(len(self.state.dataset.split(self.split.value)) - 1, 0)
        if self.unsupported:
            return
        if not self._centred:
            self._centred = True
            self.sync_controls()
            self.row.value, self.col.value = self.row.max // 2, self.col.max // 2
        crop, stage = self.current(), self.stage.value
        blocks = [b for s, b in self.blocks if s == stage]
        _set_options(self.block, [(f"{b}" + (" (shifted)" if crop.map(stage, b).shift else ""), b) for b in blocks])
        amap = crop.map(stage, self.block.value)
        heads = amap.weights.shape[2]
        _set_options(self.head, [("mean", -1)] + [(str(h), h) for h in range(heads)])
        H, W_ = amap.grid_hw
        self.row.max, self.col.max = H - 1, W_ - 1

    def on_click(self, event) -> None:
        """A click on a token of either image makes it the query token."""
        if self.unsupported or event.inaxes is None or event.xdata is None or event.inaxes not in self.figure.axes[:2]:
            return
        amap = self.current().map(self.stage.value, self.block.value)
        row, col = int(event.ydata // amap.stride_px), int(event.xdata // amap.stride_px)
        H, W_ = amap.grid_hw
        if 0 <= row < H and 0 <= col < W_:
            with self.quietly():
                self.row.value, self.col.value = row, col
            self.redraw()

    def draw(self, fig: Figure) -> None:
        if self.unsupported:
            message_figure(self.unsupported, fig=fig)
            return
        crop = self.current()
        record = crop.record
        title = (f"{self.split.value} crop {self.crop.value}: person {record.pid}, camera {record.camid + 1}"
                 f"\nstage {self.stage.value}, block {self.block.value}  ({self.state.source}, weights of "
                 f"{self.state.model_source()}; click a token to query it)")
        head = None if self.head.value < 0 else self.head.value
        attention_figure(crop, self.stage.value, self.block.value, head, (self.row.value, self.col.value),
                         title=title, fig=fig)


def _set_options(dropdown: W.Dropdown, options: list[tuple[str, int]]) -> None:
    """New options only when they differ; the value stays when it is still an option, else the first."""
    if tuple(dropdown.options) != tuple(options):
        dropdown.options = options
