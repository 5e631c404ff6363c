"""Camera proxies in UMAP: crops and/or proxy centroids in 2-D, coloured by camera, pseudo cluster or true id.

The embedding is computed once per epoch by `RunState.embedding` (crops and centroids in one UMAP fit);
changing what is shown, the colouring or the selection only redraws. Selecting a point shows its crops:
a crop with the other crops of its proxy, a proxy with its crops. Select from code with
`select(kind, index)` or `select_nearest(x, y)` (UMAP coordinates), or with the point controls.
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from lwtgpf.runs import UMAP_EPOCHS, RunState
from lwtgpf.viz.workbench_figures import PointLayer, Tile, embedding_figure

from .base import FigureView

SHOW = ("crops", "proxies", "crops + proxies")
COLOUR_BY = ("camera", "pseudo cluster", "true identity")
MAX_CROPS_SHOWN = 8


class ProxyUMAP(FigureView):
    title = "proxy UMAP"

    def __init__(self, state: RunState, n_neighbors: int = 15, n_epochs: int = UMAP_EPOCHS, seed: int = 0):
        self.umap_args = dict(n_neighbors=n_neighbors, n_epochs=n_epochs, seed=seed)
        self.show = W.Dropdown(options=list(SHOW), value="crops + proxies", description="show")
        self.colour = W.Dropdown(options=list(COLOUR_BY), value="camera", description="colour by")
        self.kind = W.Dropdown(options=["crop", "proxy"], value="crop", description="select")
        self.index = W.BoundedIntText(value=0, min=0, max=0, description="index")
        super().__init__(state, [self.show, self.colour, self.kind, self.index])
        self.refresh()

    # ---- selection -----------------------------------------------------------------------------
    def select(self, kind: str, index: int) -> None:
        """Select crop `index` (train split) or proxy `index` of this epoch."""
        if kind not in ("crop", "proxy"):
            raise ValueError(f"kind must be 'crop' or 'proxy', got {kind!r}")
        with self.quietly():
            self.kind.value = kind
            self.sync_controls()
            if not 0 <= index <= self.index.max:
                raise IndexError(f"there are {self.index.max + 1} {kind} points; index {index} is out of range")
            self.index.value = index
        self.redraw()

    def select_nearest(self, x: float, y: float) -> tuple[str, int]:
        """Select the shown point nearest to (x, y) in UMAP coordinates; returns (kind, index)."""
        candidates = []
        embedding = self.state.embedding(**self.umap_args)
        if self.show.value != "proxies":
            candidates.append(("crop", embedding.crops))
        if self.show.value != "crops":
            candidates.append(("proxy", embedding.proxies))
        nearest = []  # (distance, kind, index) of the nearest point of each kind
        for kind, xy in candidates:
            if len(xy):
                distance = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
                nearest.append((float(distance.min()), kind, int(distance.argmin())))
        if not nearest:
            raise ValueError("no point is shown")
        _, kind, index = min(nearest)
        self.select(kind, index)
        return kind, index

    # ---- drawing -------------------------------------------------------------------------------
    def sync_controls(self) -> None:
        proxies = self.state.pseudo_labels().proxies
        count = len(self.state.dataset.train) if self.kind.value == "crop" else proxies.num_proxies
        self.index.max = max(count - 1, 0)

    def selected_crops(self) -> tuple[int, np.ndarray]:
        """(proxy id or -1, train indices of the crops shown for the selection, the selected crop first)."""
        proxy_of_sample = self.state.pseudo_labels().proxies.proxy_of_sample
        if self.kind.value == "crop":
            proxy = int(proxy_of_sample[self.index.value])
            others = np.flatnonzero(proxy_of_sample == proxy) if proxy >= 0 else np.zeros(0, dtype=np.int64)
            return proxy, np.r_[self.index.value, others[others != self.index.value]]
        return self.index.value, np.flatnonzero(proxy_of_sample == self.index.value)

    def draw(self) -> Figure:
        state = self.state
        embedding = state.embedding(**self.umap_args)
        pseudo = state.pseudo_labels()
        proxies = pseudo.proxies
        crop_colours = {"camera": state.train_camids, "pseudo cluster": pseudo.labels,
                        "true identity": state.train_pids}[self.colour.value]
        proxy_colours = {"camera": proxies.camera_of_proxy, "pseudo cluster": proxies.cluster_of_proxy,
                         "true identity": state.proxy_true_ids(proxies)}[self.colour.value]
        layers = []
        if self.show.value != "proxies":
            layers.append(PointLayer("crops", embedding.crops, crop_colours, "o", 10.0))
        if self.show.value != "crops":
            layers.append(PointLayer("proxy centroids", embedding.proxies, proxy_colours, "*", 90.0))
        proxy, members = self.selected_crops()
        selected = (embedding.crops if self.kind.value == "crop" else embedding.proxies)[self.index.value] \
            if (self.kind.value == "crop" or proxies.num_proxies) else None
        size = (state.cfg.data.height, state.cfg.data.width)
        crops = [Tile(state.crop(state.dataset.train[i], size),
                      f"#{i}\nid {state.train_pids[i]} cam {state.train_camids[i] + 1}",
                      "#212121" if self.kind.value == "crop" and i == self.index.value else None)
                 for i in members[:MAX_CROPS_SHOWN]]
        if proxy < 0:
            what = f"crop {self.index.value}: an outlier (no proxy)"
        else:
            what = (f"proxy {proxy} (cluster {proxies.cluster_of_proxy[proxy]}, camera "
                    f"{proxies.camera_of_proxy[proxy] + 1}): {len(members)} crops")
            if self.kind.value == "crop":
                what = f"crop {self.index.value} in {what}"
        title = (f"UMAP of {len(state.dataset.train)} crops and {proxies.num_proxies} proxies, coloured by "
                 f"{self.colour.value}\n({state.source}, epoch {state.epoch}; grey = outlier)")
        return embedding_figure(layers, title, selected, crops, crops_title=what)
