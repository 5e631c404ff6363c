"""The one selection every view of a Workbench shares: crops, a cluster or a true identity.

A view that the user clicks in calls `select_crops`, `select_cluster` or `select_identity`; every view
observes `revision` (bumped once per change, after all fields are set) and redraws its highlight: the
UMAP circles the selected crops, the explorer shows the cluster first, the lineage frames it, the
trajectory follows it, the rank list marks the identity's gallery crops.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import traitlets


class Selection(traitlets.HasTraits):
    crops = traitlets.Tuple()  # train indices of the selected crops
    cluster = traitlets.Int(-1)  # pseudo cluster at `epoch`, -1: none
    identity = traitlets.Int(-1)  # true identity, -1: none
    epoch = traitlets.Int(0)  # the epoch whose labels `cluster` refers to
    source = traitlets.Unicode("")  # which view made it, e.g. "proxy UMAP (box)"
    revision = traitlets.Int(0)  # bumped once per selection change: what views observe

    def select_crops(self, crops: Iterable[int], source: str = "") -> None:
        self._set(crops=tuple(int(i) for i in crops), cluster=-1, identity=-1, source=source)

    def select_cluster(self, cluster: int, epoch: int, crops: Iterable[int], source: str = "") -> None:
        self._set(crops=tuple(int(i) for i in crops), cluster=int(cluster), identity=-1, epoch=int(epoch),
                  source=source)

    def select_identity(self, identity: int, crops: Iterable[int], source: str = "") -> None:
        self._set(crops=tuple(int(i) for i in crops), cluster=-1, identity=int(identity), source=source)

    def clear(self) -> None:
        self._set(crops=(), cluster=-1, identity=-1, source="")

    @property
    def indices(self) -> np.ndarray:
        return np.asarray(self.crops, dtype=np.int64)

    def describe(self) -> str:
        if self.identity >= 0:
            what = f"identity {self.identity}"
        elif self.cluster >= 0:
            what = f"cluster {self.cluster} of epoch {self.epoch}"
        elif self.crops:
            what = f"crop {self.crops[0]}" if len(self.crops) == 1 else "crops"
        else:
            return "nothing selected: click a point, a cluster or a crop in any view"
        return f"selected {what} ({len(self.crops)} crops)" + (f", from the {self.source}" if self.source else "")

    def _set(self, **values) -> None:
        with self.hold_trait_notifications():
            for name, value in values.items():
                setattr(self, name, value)
        self.revision += 1
