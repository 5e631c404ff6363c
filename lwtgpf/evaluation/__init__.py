"""Evaluation of SPEC section 7: ranking metrics (CMC, mAP, mINP) and k-reciprocal re-ranking."""
from .ranking import (
    evaluate_features,
    evaluate_rank,
    format_results,
    pairwise_distance,
    reference_evaluate_rank,
)
from .rerank import re_ranking, re_ranking_features

__all__ = [
    "evaluate_features",
    "evaluate_rank",
    "format_results",
    "pairwise_distance",
    "re_ranking",
    "re_ranking_features",
    "reference_evaluate_rank",
]
