"""Evaluation of SPEC section 7: ranking metrics (CMC, mAP, mINP) and k-reciprocal re-ranking (dense
reference in rerank.py, bounded-memory version in rerank_sparse.py)."""
from .ranking import (
    evaluate_features,
    evaluate_rank,
    format_results,
    pairwise_distance,
    reference_evaluate_rank,
    topk_distances,
)
from .rerank import re_ranking, re_ranking_features
from .rerank_sparse import (
    KReciprocalReranking,
    available_memory_bytes,
    estimate_rerank_bytes,
    sparse_re_ranking,
)

__all__ = [
    "KReciprocalReranking",
    "available_memory_bytes",
    "estimate_rerank_bytes",
    "evaluate_features",
    "evaluate_rank",
    "format_results",
    "pairwise_distance",
    "re_ranking",
    "re_ranking_features",
    "reference_evaluate_rank",
    "sparse_re_ranking",
    "topk_distances",
]
