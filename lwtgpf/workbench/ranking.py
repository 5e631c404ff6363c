"""A query's ranked list, read off the evaluation's own results (`lwtgpf.engine.evaluate`), so the
workbench ranks exactly as `lwtgpf evaluate` does (re-ranking included when the run's config says so)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

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


def rank_list(results: dict[str, Any], query: Sequence[Record], gallery: Sequence[Record],
              query_index: int) -> RankList:
    """The RankList of `query_index` from evaluation `results` ("topk", "topk_distance", "per_query_ap":
    `lwtgpf.engine.evaluate.evaluate_extracted` with return_topk, or a run folder's stored ranking)."""
    if not 0 <= query_index < len(query):
        raise IndexError(f"query has {len(query)} crops; index {query_index} is out of range")
    row = np.asarray(results["topk"][query_index])
    kept = row >= 0
    shown = tuple(gallery[i] for i in row[kept])
    record = query[query_index]
    return RankList(
        query_index=query_index, query=record, gallery_index=row[kept].astype(np.int64), gallery=shown,
        distance=np.asarray(results["topk_distance"][query_index])[kept].astype(np.float32),
        correct=np.array([r.pid == record.pid for r in shown], dtype=bool),
        average_precision=float(results["per_query_ap"][query_index]),
    )
