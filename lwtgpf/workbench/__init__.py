"""The workbench's core: what the widgets and notebooks show of a run, as plain data (no Jupyter).

    state.py       RunState: a live Trainer or a run folder, with an epoch cursor
    history.py     clusters through time: lineage, trajectories, camera pairs
    recluster.py   Reclusterer (other DBSCAN / Jaccard settings on cached features), cluster summaries
    embedding.py   UMAP of crops and proxy centroids
    attention.py   a crop's window-attention maps
    ranking.py     a query's ranked list from the evaluation's own results
    crops.py       crop pixels, decoded once

Extraction, evaluation and pseudo-labelling are the trainer's own (`lwtgpf.engine`, `lwtgpf.cluster`).
"""
from .attention import CropAttention
from .embedding import UMAP_EPOCHS, Embedding, umap_embedding
from .history import CameraPairs, EpochShare, Lineage, camera_pairs, lineage, trajectory, trajectory_story
from .ranking import RankList
from .recluster import ClusterSummary, Reclusterer, cluster_summaries
from .state import SPLITS, RunState

__all__ = [
    "SPLITS", "UMAP_EPOCHS", "CameraPairs", "ClusterSummary", "CropAttention", "Embedding", "EpochShare", "Lineage",
    "RankList", "Reclusterer", "RunState", "camera_pairs", "cluster_summaries", "lineage", "trajectory",
    "trajectory_story", "umap_embedding",
]
