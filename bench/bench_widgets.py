"""Workbench responsiveness (issue #6 item 4): redraws, re-clustering of cached features, UMAP caching.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_widgets.py            # ~13k features, as Market-1501
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_widgets.py --n 3000   # quicker

Three tables, each with its anchor measured in the same run:
1. redraw  A tiny real run (the synthetic benchmark, generated into a temporary folder, one Trainer
           epoch); every widget is built on it, then one control that needs no recomputation is changed
           `--repeats` times (median wall time of the change, observer + figure + PNG). Target < 200 ms.
           Anchor: the changes that DO recompute (a new crop's forward pass, a new eps on the tiny set,
           the dashboard's panels after an epoch).
2. recluster  `--n` synthetic 768-d features with identity and camera structure (bench_cluster.py's
           generator, 751 people / 6 cameras at 12,936). The first clustering (kNN + Jaccard + DBSCAN +
           proxies + quality, as the trainer's `pseudo_label`) against what the cluster explorer's
           sliders cost afterwards through `Reclusterer`: eps / min_samples reuse the Jaccard distance,
           k2 reuses the kNN, k1 redoes both.
3. umap    The first UMAP fit of the process (numba's JIT, measured on its own first); RunState's per-epoch
           cache (first call vs the same epoch again); one fit of the `--n` features and their proxy
           centroids with `umap_embedding` (exact kNN from lwtgpf.cluster + umap-learn's layout), against
           umap-learn's own NN-descent on the same points (anchor, after compiling it: its compile time is
           its own row); and the UMAP view's redraw at that scale.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_cluster import SCALES, make_features
from lwtgpf.cluster import PseudoLabels, proxy_centroids, pseudo_label
from lwtgpf.config import load_config
from lwtgpf.data.synthetic import generate_synthetic
from lwtgpf.engine.trainer import Trainer
from lwtgpf.workbench import UMAP_EPOCHS, Embedding, Reclusterer, RunState, cluster_summaries, umap_embedding
from lwtgpf.viz.workbench_figures import (
    DASHBOARD_PANELS,
    PointLayer,
    embedding_figure,
    figure_png,
    purity_dashboard_figure,
)
from widgets import AttentionWindows, ClusterExplorer, ProxyUMAP, PurityDashboard, RankList

TARGET_MS = 200.0
BENCHMARK = dict(num_train_ids=24, num_test_ids=16, num_cameras=4, cameras_per_id=(2, 4), num_distractors=8)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_ms(actions, repeats: int) -> float:
    """Median wall time in ms of cycling through `actions` (each a control change) `repeats` times."""
    times = [1000 * timed(actions[i % len(actions)]) for i in range(repeats)]
    return statistics.median(times)


def setter(control, value):
    return lambda: setattr(control, "value", value)


def tiny_run(root: Path) -> Trainer:
    generate_synthetic(root, "synthetic", seed=0, **BENCHMARK)
    cfg = load_config("synthetic", {"data.root": str(root), "train.epochs": 1, "data.iters_per_epoch": 4,
                                    "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3})
    trainer = Trainer(cfg)
    trainer.step()
    return trainer


def redraw_table(repeats: int) -> list[tuple[str, str, float, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = tiny_run(Path(tmp))
        state = RunState.from_trainer(trainer)
        attention = AttentionWindows(state)
        umap_view = ProxyUMAP(state)
        dashboard = PurityDashboard(state)
        explorer = ClusterExplorer(state)
        ranks = RankList(state)
        no_recompute = [
            ("attention windows", "head", [setter(attention.head, 0), setter(attention.head, -1)]),
            ("attention windows", "query token", [setter(attention.row, 3), setter(attention.row, 9)]),
            ("attention windows", "stage", [setter(attention.stage, 2), setter(attention.stage, 0)]),
            ("proxy UMAP", "colour by", [setter(umap_view.colour, "true identity"),
                                         setter(umap_view.colour, "camera")]),
            ("proxy UMAP", "select a point", [lambda: umap_view.select("crop", 5),
                                              lambda: umap_view.select("proxy", 3)]),
            ("purity dashboard", "panels", [setter(dashboard.panels, ("NMI / ARI",)),
                                            setter(dashboard.panels, tuple(dashboard.panels.options))]),
            ("cluster explorer", "example count", [setter(explorer.examples, 2), setter(explorer.examples, 3)]),
            ("rank list", "query", [setter(ranks.query, 3), setter(ranks.query, 4)]),
            ("rank list", "top k", [setter(ranks.k, 5), setter(ranks.k, 10)]),
        ]
        for view, change, actions in no_recompute:
            ms = median_ms(actions, repeats)
            rows.append((view, change, ms, "yes" if ms < TARGET_MS else "NO"))
        n = len(state.dataset.query)
        recompute = [
            ("attention windows", "another crop (forward pass)",
             [setter(attention.crop, (i * 7) % n) for i in range(1, repeats + 1)]),
            ("cluster explorer", f"eps (re-cluster {len(state.dataset.train)} crops)",
             [setter(explorer.eps, 0.40 + 0.01 * i) for i in range(repeats)]),
        ]
        for view, change, actions in recompute:
            rows.append((view, change, median_ms(actions, repeats), "anchor"))
        history = state.history
        new_epoch = [lambda: [figure_png(purity_dashboard_figure(history, [p], title="")) for p in DASHBOARD_PANELS]]
        rows.append(("purity dashboard", "a new epoch (render the 5 panels)", median_ms(new_epoch, repeats), "anchor"))
    return rows


def recluster_table(n: int) -> tuple[list[tuple[str, float]], torch.Tensor, np.ndarray, np.ndarray, PseudoLabels]:
    num_ids, num_cams = SCALES.get(n, (max(n // 17, 2), 6))
    feats, pids, cams = make_features(n, num_ids, num_cams)
    cfg = load_config(None).cluster  # the reference recipe: k1 20, k2 6, eps 0.5, min_samples 4
    rows = []
    start = time.perf_counter()
    first = pseudo_label(feats, cams, cfg, num_cams, true_pids=pids)
    rows.append(("first clustering: pseudo_label (kNN + Jaccard + DBSCAN + proxies + quality)",
                 time.perf_counter() - start))
    explorer = Reclusterer(feats, cams, num_cams, true_pids=pids)
    rows.append(("explorer opens: Reclusterer, same settings (kNN + Jaccard)",
                 timed(lambda: explorer.run(cfg.eps, cfg.min_samples, cfg.k1, cfg.k2))))
    rows.append(("slider eps 0.5 -> 0.45 (Jaccard reused)", timed(lambda: explorer.run(0.45, 4, 20, 6))))
    rows.append(("slider min_samples 4 -> 6 (Jaccard reused)", timed(lambda: explorer.run(0.45, 6, 20, 6))))
    rows.append(("slider k2 6 -> 4 (kNN reused, Jaccard redone)", timed(lambda: explorer.run(0.45, 6, 20, 4))))
    rows.append(("slider k1 20 -> 25 (kNN + Jaccard redone)", timed(lambda: explorer.run(0.45, 6, 25, 4))))
    rows.append(("slider back to k1 20, k2 6 (both cached)", timed(lambda: explorer.run(0.5, 4, 20, 6))))
    return rows, feats, pids, cams, first


def umap_jit_warmup(dim: int = 768, n: int = 300) -> tuple[str, float]:
    """The first UMAP fit of a process compiles umap-learn's numba kernels; measured on its own."""
    points = torch.nn.functional.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(0)), dim=1)
    return f"first fit in the process ({n} random points: mostly numba JIT)", timed(
        lambda: umap_embedding(points, points[:0]))


def umap_fit_rows(feats: torch.Tensor, pseudo, baseline: bool) -> tuple[list[tuple[str, float]], Embedding]:
    """`umap_embedding` (exact kNN from lwtgpf.cluster, then umap-learn's layout) of crops + proxy centroids;
    with `baseline`, umap-learn left to its own NN-descent on the same points and settings, for comparison."""
    proxies = pseudo.proxies
    centres = proxy_centroids(feats, proxies.proxy_of_sample, proxies.num_proxies)
    what = f"{len(feats)} crops + {len(centres)} proxy centroids"
    start = time.perf_counter()
    embedding = umap_embedding(feats, centres)
    rows = [(f"umap_embedding: {what} (once per epoch)", time.perf_counter() - start)]
    if baseline:
        import umap

        points = torch.cat([feats, centres]).numpy()

        def reducer(epochs: int = UMAP_EPOCHS):
            return umap.UMAP(n_neighbors=15, n_epochs=epochs, random_state=0, metric="cosine", n_jobs=1)

        # its NN-descent compiles on first use (umap-learn searches exactly below 4096 points): on its own
        rows.append(("  anchor, first use: compile umap-learn's NN-descent (+ a 1-epoch fit of 4200 points)",
                     timed(lambda: reducer(epochs=1).fit_transform(points[:4200]))))
        rows.append(("  anchor: umap-learn with its own NN-descent, same points and settings",
                     timed(lambda: reducer().fit_transform(points))))
        torch.set_num_threads(1)  # umap-learn leaves numba's (= torch's OpenMP) thread count at every core
    return rows, embedding


def scatter_redraw_ms(embedding: Embedding, pseudo, cams, repeats: int) -> float:
    """The UMAP view's redraw at this scale: the scatter of every crop and proxy, recoloured, to PNG."""
    proxies = pseudo.proxies
    colourings = [(cams, proxies.camera_of_proxy), (pseudo.labels, proxies.cluster_of_proxy)]

    def redraw(i: int) -> None:
        crops, centres = colourings[i % 2]
        layers = [PointLayer("crops", embedding.crops, crops, "o", 4.0),
                  PointLayer("proxy centroids", embedding.proxies, centres, "*", 40.0)]
        figure_png(embedding_figure(layers, "bench", embedding.crops[0]))

    return median_ms([lambda i=i: redraw(i) for i in range(2)], repeats)


def umap_cache_rows() -> list[tuple[str, float]]:
    """RunState's per-epoch cache on the tiny run: the second call of an epoch is a lookup."""
    with tempfile.TemporaryDirectory() as tmp:
        state = RunState.from_trainer(tiny_run(Path(tmp)))
        first = timed(state.embedding)
        again = statistics.median(timed(state.embedding) for _ in range(20))
    n = len(state.dataset.train)
    return [(f"RunState.embedding(), tiny run ({n} crops): first call of the epoch", first),
            ("RunState.embedding(), same epoch again (cached)", again)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12936, help="cached features to re-cluster / embed")
    parser.add_argument("--repeats", type=int, default=10, help="changes per redraw row")
    parser.add_argument("--skip-umap-n", action="store_true", help="skip the UMAP fit of the --n features")
    parser.add_argument("--skip-umap-baseline", action="store_true",
                        help="skip umap-learn's own NN-descent fit of the --n features (minutes at 13k)")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}\n")
    jit_row = umap_jit_warmup()  # before any widget fits a UMAP, so that the JIT shows on its own

    print(f"1. redraw after a widget change (median of {args.repeats}; target < {TARGET_MS:.0f} ms)")
    print(f"{'view':<20} {'change':<42} {'ms':>8}  < {TARGET_MS:.0f} ms")
    for view, change, ms, ok in redraw_table(args.repeats):
        print(f"{view:<20} {change:<42} {ms:8.1f}  {ok}")

    rows, feats, pids, cams, first = recluster_table(args.n)
    print(f"\n2. re-clustering {args.n} cached 768-d features (k1 20, k2 6, eps 0.5, min_samples 4)")
    print(f"{'step':<80} {'s':>7}")
    for name, sec in rows:
        print(f"{name:<80} {sec:7.2f}")
    print(f"   ({first.num_clusters} clusters, {100 * (first.labels < 0).mean():.1f}% outliers, "
          f"NMI {first.quality['nmi']:.3f})")
    print(f"{'cluster explorer: rank all clusters by purity (cluster_summaries)':<80} "
          f"{timed(lambda: cluster_summaries(first.labels, pids, cams)):7.2f}")

    print("\n3. UMAP: once per epoch, then cached")
    print(f"{'step':<80} {'s':>7}")
    umap_rows = [jit_row, *umap_cache_rows()]
    embedding = None
    if not args.skip_umap_n:
        fit_rows, embedding = umap_fit_rows(feats, first, baseline=not args.skip_umap_baseline)
        umap_rows += fit_rows
    for name, sec in umap_rows:
        print(f"{name:<80} {sec:7.3f}")
    if embedding is not None:
        ms = scatter_redraw_ms(embedding, first, cams, args.repeats)
        print(f"{f'proxy UMAP redraw at this scale ({args.n} crops, colour change), ms':<80} {ms:7.1f}"
              f"  {'< 200 ms' if ms < TARGET_MS else 'OVER 200 ms'}")


if __name__ == "__main__":
    main()
