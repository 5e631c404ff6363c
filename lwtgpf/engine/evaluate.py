"""Evaluate a model on a dataset's query/gallery: the one path the trainer and `lwtgpf evaluate` share."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lwtgpf.config import Config
from lwtgpf.data import build_test_transform
from lwtgpf.data.records import ReidDataset
from lwtgpf.engine.extract import extract_features
from lwtgpf.evaluation import evaluate_features, evaluate_rank, re_ranking_features


def evaluate_model(
    model: torch.nn.Module,
    dataset: ReidDataset,
    cfg: Config,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    return_topk: int = 0,
) -> dict[str, Any]:
    """mAP, CMC (R1/R5/R10) and mINP of `model` on `dataset` (fractions in [0, 1]).

    Uses the test-time feature of the config; with `eval.rerank` the k-reciprocal re-ranked distance
    (dense, Market-sized datasets) replaces the plain one.
    """
    query, gallery = dataset.query, dataset.gallery
    feats = extract_features(
        model, list(query) + list(gallery), build_test_transform(cfg.data), kind="test",
        batch_size=cfg.eval.batch_size, workers=cfg.data.workers, device=device, amp_dtype=amp_dtype,
        desc="evaluate",
    )
    q, g = feats[: len(query)], feats[len(query):]
    labels = (
        np.array([r.pid for r in query]), np.array([r.pid for r in gallery]),
        np.array([r.camid for r in query]), np.array([r.camid for r in gallery]),
    )
    if not cfg.eval.rerank:
        return evaluate_features(q, g, *labels, max_rank=cfg.eval.max_rank, return_topk=return_topk)
    if return_topk:
        raise ValueError("eval.rerank with ranked lists is not supported; evaluate without re-ranking for top-k")
    distance = re_ranking_features(q, g, cfg.eval.rerank_k1, cfg.eval.rerank_k2, cfg.eval.rerank_lambda)
    cmc, mean_ap, minp = evaluate_rank(distance, *labels, max_rank=cfg.eval.max_rank)
    return {"mAP": mean_ap, "cmc": cmc, "mINP": minp, "R1": cmc[0], "R5": cmc[min(4, len(cmc) - 1)],
            "R10": cmc[min(9, len(cmc) - 1)]}
