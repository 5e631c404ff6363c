"""A query's ranked list, read off the evaluation's own results (`lwtgpf.engine.evaluate`), so the
workbench ranks exactly as `lwtgpf evaluate` does (re-ranking included when the run's config says so)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lwtgpf.data import Record


@dataclass(frozen=True)
class RankList:
    """A query and its first k gallery crops after the protocol drops same-person same-camera crops.

    gallery_index: (k,) int64 indices into dataset.gallery (fewer than k when the gallery is short)
    distance:      (k,) float32 squared Euclidean distance between unit features (2 - 2 cos); the
                   evaluation's ranking decides the order (with re-ranking it may not be ascending here)
    correct:       (k,) bool, same person as the query
    average_precision: the query's AP (NaN when the gallery has no true match of it)
    """

    query_index: int
    query: Record
    gallery_index: np.ndarray
    gallery: tuple[Record, ...]
    distance: np.ndarray
    correct: np.ndarray
    average_precision: float


def rank_list(results: dict[str, Any], q_feats: torch.Tensor, g_feats: torch.Tensor, query: Sequence[Record],
              gallery: Sequence[Record], query_index: int) -> RankList:
    """The RankList of `query_index` from evaluation `results` (with "topk" and "per_query_ap")."""
    if not 0 <= query_index < len(query):
        raise IndexError(f"query has {len(query)} crops; index {query_index} is out of range")
    row = results["topk"][query_index]
    row = row[row >= 0]
    qf = F.normalize(q_feats[query_index:query_index + 1].float(), dim=1)
    gf = F.normalize(g_feats[torch.as_tensor(row, dtype=torch.long)].float(), dim=1)
    distance = (2 - 2 * qf @ gf.T)[0].numpy().astype(np.float32)
    shown = tuple(gallery[i] for i in row)
    record = query[query_index]
    return RankList(
        query_index=query_index, query=record, gallery_index=np.asarray(row, dtype=np.int64), gallery=shown,
        distance=distance, correct=np.array([r.pid == record.pid for r in shown], dtype=bool),
        average_precision=float(results["per_query_ap"][query_index]),
    )
