"""Evaluate a model on a dataset's query/gallery: the one path the trainer and `lwtgpf evaluate` share."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from lwtgpf.config import Config
from lwtgpf.data import build_test_transform
from lwtgpf.data.records import Record, ReidDataset
from lwtgpf.engine.extract import extract_features
from lwtgpf.errors import UserError
from lwtgpf.evaluation import available_memory_bytes, estimate_rerank_bytes, evaluate_features, topk_distances


def check_rerank_memory(num_query: int, num_gallery: int, dim: int, cfg: Config) -> None:
    """Raise a one-line UserError naming eval.rerank when the re-ranked evaluation of this split would
    not fit in the memory available now (/proc/meminfo MemAvailable); nothing to check when re-ranking
    is off or the available memory cannot be read."""
    if not cfg.eval.rerank:
        return
    need = estimate_rerank_bytes(num_query, num_gallery, dim, cfg.eval.rerank_k1, cfg.eval.rerank_k2)
    available = available_memory_bytes()
    if available is not None and need > available:
        raise UserError(
            f"eval.rerank=true needs about {need / 2**30:.1f} GiB for {num_query} queries x {num_gallery} "
            f"gallery crops ({dim}-d features) but {available / 2**30:.1f} GiB is available; free memory "
            "or evaluate with eval.rerank=false")


def evaluate_extracted(
    q_feats: torch.Tensor,
    g_feats: torch.Tensor,
    query: Sequence[Record],
    gallery: Sequence[Record],
    cfg: Config,
    return_topk: int = 0,
) -> dict[str, Any]:
    """The evaluation of `evaluate_model` from already extracted features (Q, D), (G, D) of the
    `query` and `gallery` records: plain or, with eval.rerank, re-ranked (memory checked first).
    Returns `lwtgpf.evaluation.evaluate_features`' dict, plus with return_topk "topk_distance" ((Q, k)
    float32, the plain squared distance 2 - 2cos of each listed crop; NaN for padding)."""
    check_rerank_memory(len(query), len(gallery), q_feats.shape[1], cfg)
    labels = (
        np.array([r.pid for r in query]), np.array([r.pid for r in gallery]),
        np.array([r.camid for r in query]), np.array([r.camid for r in gallery]),
    )
    results = evaluate_features(
        q_feats, g_feats, *labels, max_rank=cfg.eval.max_rank, return_topk=return_topk,
        rerank=cfg.eval.rerank, rerank_k1=cfg.eval.rerank_k1, rerank_k2=cfg.eval.rerank_k2,
        rerank_lambda=cfg.eval.rerank_lambda,
    )
    if return_topk:
        results["topk_distance"] = topk_distances(q_feats, g_feats, results["topk"])
    return results


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
    (sparse, any dataset size; its memory need is checked before any feature is extracted) replaces
    the plain one. `return_topk` > 0 adds the ranked lists ("topk", (Q, k) gallery indices, and
    "topk_distance").
    """
    query, gallery = dataset.query, dataset.gallery
    dim = getattr(model, "test_feature_dim", None)  # every lwtgpf model has it
    if isinstance(dim, int):
        check_rerank_memory(len(query), len(gallery), dim, cfg)
    feats = extract_features(
        model, list(query) + list(gallery), build_test_transform(cfg.data), kind="test",
        batch_size=cfg.eval.batch_size, workers=cfg.data.workers, device=device, amp_dtype=amp_dtype,
        desc="evaluate",
    )
    return evaluate_extracted(feats[: len(query)], feats[len(query):], query, gallery, cfg, return_topk)
