"""Camera proxies in UMAP: crops and proxy centroids in 2-D, coloured by camera, pseudo cluster or true id.

The mouse: hover a point to see its crop beside the plot; click a crop to select it (a proxy centroid:
its crops); drag a box or a lasso (the `tool` buttons) to select every crop inside. The selection is
the Workbench's shared one, so the other views highlight it; its points are circled here.
The embedding is computed once per epoch by `RunState.embedding`; hover and selection never refit it.
"""
from __future__ import annotations

import io

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath
from matplotlib.widgets import LassoSelector, RectangleSelector
from PIL import Image

from lwtgpf.viz.workbench_figures import PointLayer, Tile, embedding_figure
from lwtgpf.workbench import UMAP_EPOCHS, RunState

from .base import FigureView
from .selection import Selection

SHOW = ("crops", "proxies", "crops + proxies")
COLOUR_BY = ("camera", "pseudo cluster", "true identity")
MAX_CROPS_SHOWN = 8
HOVER_PX = 8.0  # a point within this many screen pixels of the mouse is the one hovered


class ProxyUMAP(FigureView):
    title = "proxy UMAP"

    def __init__(self, state: RunState, selection: Selection | None = None, visible: bool = True, n_neighbors: int = 15,
                 n_epochs: int = UMAP_EPOCHS, seed: int = 0):
        self.umap_args = dict(n_neighbors=n_neighbors, n_epochs=n_epochs, seed=seed)
        self.layers = W.Dropdown(options=list(SHOW), value="crops + proxies", description="show")
        self.colour = W.Dropdown(options=list(COLOUR_BY), value="camera", description="colour by")
        self.tool = W.ToggleButtons(options=["box", "lasso"], value="box", description="drag",
                                    tooltips=["drag a rectangle to select the crops in it", "draw around crops"])
        self.preview = W.Image(format="png", layout=W.Layout(width="96px"))
        self.preview_text = W.HTML("hover a point to see its crop")
        self.hovered: tuple[str, int] | None = None
        self._selector = None
        super().__init__(state, [self.layers, self.colour, self.tool], selection, visible)
        controls, canvas, status = self.children
        self.children = (controls, W.HBox([canvas, W.VBox([self.preview, self.preview_text])]), status)
        self.start()

    # ---- what is shown ---------------------------------------------------------------------------
    def shown_points(self) -> list[tuple[str, np.ndarray]]:
        """[(kind, (M, 2) UMAP xy)] of the layers on screen."""
        embedding = self.state.embedding(**self.umap_args)
        layers = []
        if self.layers.value != "proxies":
            layers.append(("crop", embedding.crops))
        if self.layers.value != "crops":
            layers.append(("proxy", embedding.proxies))
        return layers

    def nearest(self, x_px: float, y_px: float, radius: float = HOVER_PX) -> tuple[str, int] | None:
        """The shown point under screen position (x_px, y_px) (display pixels), or None."""
        if not self.figure.axes:
            return None
        transform = self.figure.axes[0].transData
        best = None
        for kind, xy in self.shown_points():
            if not len(xy):
                continue
            screen = transform.transform(xy)
            distance = np.hypot(screen[:, 0] - x_px, screen[:, 1] - y_px)
            i = int(distance.argmin())
            if distance[i] <= radius and (best is None or distance[i] < best[0]):
                best = (float(distance[i]), kind, i)
        return None if best is None else (best[1], best[2])

    def crops_of(self, kind: str, index: int) -> np.ndarray:
        """Train indices a point stands for: a crop itself, a proxy its crops."""
        if kind == "crop":
            return np.array([index])
        return np.flatnonzero(self.state.pseudo_labels().proxies.proxy_of_sample == index)

    # ---- the mouse -------------------------------------------------------------------------------
    def on_move(self, event) -> None:
        if not self.figure.axes or event.inaxes is not self.figure.axes[0]:
            return
        hit = self.nearest(event.x, event.y)
        if hit is not None and hit != self.hovered:
            self.hovered = hit
            self._show_preview(*hit)

    def on_click(self, event) -> None:
        if not self.figure.axes or event.inaxes is not self.figure.axes[0]:
            return
        hit = self.nearest(event.x, event.y)
        if hit is not None:
            self.select(*hit)

    def select(self, kind: str, index: int) -> None:
        """Select crop `index` of the train split, or the crops of proxy `index` of this epoch."""
        if kind not in ("crop", "proxy"):
            raise ValueError(f"kind must be 'crop' or 'proxy', got {kind!r}")
        count = len(self.state.dataset.train) if kind == "crop" else self.state.pseudo_labels().proxies.num_proxies
        if not 0 <= index < count:
            raise IndexError(f"there are {count} {kind} points; index {index} is out of range")
        self.selection.select_crops(self.crops_of(kind, index), source=f"proxy UMAP ({kind} {index})")

    def select_inside(self, polygon: np.ndarray, how: str) -> None:
        """Select the crops whose points lie inside `polygon` ((V, 2) UMAP coordinates)."""
        crops = self.state.embedding(**self.umap_args).crops
        inside = np.flatnonzero(MplPath(polygon).contains_points(crops))
        self.selection.select_crops(inside, source=f"proxy UMAP ({how})")

    def _on_box(self, press, release) -> None:
        (x0, x1), (y0, y1) = sorted((press.xdata, release.xdata)), sorted((press.ydata, release.ydata))
        self.select_inside(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), "box")

    def _on_lasso(self, vertices) -> None:
        if len(vertices) >= 3:
            self.select_inside(np.asarray(vertices), "lasso")

    def _show_preview(self, kind: str, index: int) -> None:
        state = self.state
        pseudo = state.pseudo_labels()
        if kind == "crop":
            record = state.dataset.train[index]
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(state.crop(record, (state.cfg.data.height, state.cfg.data.width)))).save(
                buffer, format="png", compress_level=1)
            self.preview.value = buffer.getvalue()
            self.preview_text.value = (f"crop {index}<br>id {record.pid}, camera {record.camid + 1}<br>"
                                       f"cluster {pseudo.labels[index]}")
        else:
            proxies = pseudo.proxies
            self.preview_text.value = (f"proxy {index}<br>cluster {proxies.cluster_of_proxy[index]}, camera "
                                       f"{proxies.camera_of_proxy[index] + 1}<br>{len(self.crops_of('proxy', index))} crops")

    # ---- drawing ---------------------------------------------------------------------------------
    def draw(self, fig: Figure) -> None:
        state = self.state
        embedding = state.embedding(**self.umap_args)
        pseudo = state.pseudo_labels()
        proxies = pseudo.proxies
        crop_colours = {"camera": state.train_camids, "pseudo cluster": pseudo.labels,
                        "true identity": state.train_pids}[self.colour.value]
        proxy_colours = {"camera": proxies.camera_of_proxy, "pseudo cluster": proxies.cluster_of_proxy,
                         "true identity": state.proxy_true_ids(proxies)}[self.colour.value]
        layers = []
        if self.layers.value != "proxies":
            layers.append(PointLayer("crops", embedding.crops, crop_colours, "o", 10.0))
        if self.layers.value != "crops":
            layers.append(PointLayer("proxy centroids", embedding.proxies, proxy_colours, "*", 90.0))
        picked = self.selection.indices
        picked = picked[picked < len(embedding.crops)]
        size = (state.cfg.data.height, state.cfg.data.width)
        crops = [Tile(state.crop(state.dataset.train[i], size),
                      f"#{i}\nid {state.train_pids[i]} cam {state.train_camids[i] + 1}", "#212121")
                 for i in picked[:MAX_CROPS_SHOWN]]
        title = (f"UMAP of {len(state.dataset.train)} crops and {proxies.num_proxies} proxies, coloured by "
                 f"{self.colour.value}\n({state.source}, epoch {state.epoch}, features of "
                 f"{state.features_source()}; grey = outlier)")
        embedding_figure(layers, title, embedding.crops[picked[0]] if len(picked) == 1 else None, crops,
                         crops_title=self.selection.describe() if len(picked) else "hover, click, or drag a "
                         f"{self.tool.value} to select",
                         highlight=picked if self.layers.value != "proxies" else None, fig=fig)
        self._attach_selector(fig.axes[0])

    def _attach_selector(self, ax) -> None:
        if self._selector is not None:
            self._selector.disconnect_events()
        if self.tool.value == "box":
            self._selector = RectangleSelector(ax, self._on_box, useblit=False, button=[1], minspanx=5, minspany=5,
                                               spancoords="pixels", interactive=False)
        else:
            self._selector = LassoSelector(ax, self._on_lasso, useblit=False, button=[1])
