"""Workbench responsiveness: the mouse and the epoch cursor at Market size, redraws, re-clustering, UMAP.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_widgets.py            # ~13k features, as Market-1501
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_widgets.py --n 3000   # quicker

Four tables, each with its anchor or floor measured in the same run:
0. market  A run folder at Market-1501's size (12,936 train crops of 751 people in 6 cameras, 50 epochs
           of pseudo labels, features and rankings kept at epochs 1, 10, 20, 30, 40 and 50), opened in a
           Workbench. Mouse events go through the ipympl comm message a browser sends; each timing runs
           from the message to the image the browser receives (the figure rendered by Agg and encoded as
           the PNG diff ipympl sends), median of `--repeats`. Targets: hover / click < 200 ms; switching
           epoch < 1 s where that epoch's features are stored; lineage between two epochs < 1 s.
           Floor: rendering and encoding the same UMAP figure with no handler at all.
           The labels are simulated (people split by camera at first, merging epoch by epoch, some
           outliers and wrong merges): the views' cost depends on sizes, not on how the labels were made.
1. redraw  A tiny real run (the synthetic benchmark, generated into a temporary folder, one Trainer
           epoch); every widget is built on it, then one control that needs no recomputation is changed
           `--repeats` times (median wall time of the change until the image a browser receives is
           ready: observer + figure + Agg render + PNG diff). Target < 200 ms.
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
from widgets import AttentionWindows, ClusterExplorer, ProxyUMAP, PurityDashboard, RankList, Workbench

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
    trainer = Trainer(cfg, verbose=False)
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
        views = {"attention windows": attention, "proxy UMAP": umap_view, "purity dashboard": dashboard,
                 "cluster explorer": explorer, "rank list": ranks}
        for view, change, actions in no_recompute:  # each change until the browser has its image
            ms = median_ms([lambda a=a, v=views[view]: (a(), image_sent(v)) for a in actions], repeats)
            rows.append((view, change, ms, "yes" if ms < TARGET_MS else "NO"))
        n = len(state.dataset.query)
        recompute = [
            ("attention windows", "another crop (forward pass)",
             [setter(attention.crop, (i * 7) % n) for i in range(1, repeats + 1)]),
            ("cluster explorer", f"eps (re-cluster {len(state.dataset.train)} crops)",
             [setter(explorer.eps, 0.40 + 0.01 * i) for i in range(repeats)]),
        ]
        for view, change, actions in recompute:
            rows.append((view, change, median_ms([lambda a=a, v=views[view]: (a(), image_sent(v)) for a in actions],
                                                 repeats), "anchor"))
        history = state.history
        new_epoch = [lambda: [figure_png(purity_dashboard_figure(history, [p], title="")) for p in DASHBOARD_PANELS]]
        rows.append(("purity dashboard", "a new epoch (render the 5 panels)", median_ms(new_epoch, repeats), "anchor"))
    return rows


# ---------------------------------------------------------------------------------------------------
# 0. A Market-size run folder in a Workbench


MARKET = dict(train=12936, query=3368, gallery=15913, ids=751, cameras=6, epochs=50)
KEPT = (1, 10, 20, 30, 40, 50)  # train.keep_features "eval" with eval_every 10


def simulated_labels(pids: np.ndarray, cams: np.ndarray, epochs: int, seed: int = 0) -> dict[int, np.ndarray]:
    """{epoch: (N,) labels}: each person starts split into one cluster per camera; epoch by epoch some of
    their camera clusters merge (and a few people merge wrongly with another), 2-8% outliers."""
    rng = np.random.default_rng(seed)
    num_ids, num_cams = int(pids.max()) + 1, int(cams.max()) + 1
    group = np.arange(num_ids * num_cams).reshape(num_ids, num_cams)  # (person, camera) -> its group
    labels = {}
    for epoch in range(1, epochs + 1):
        for person in rng.choice(num_ids, size=num_ids // 8, replace=False):  # merge two camera groups
            a, b = rng.choice(num_cams, size=2, replace=False)
            group[person, b] = group[person, a]
        if epoch % 7 == 0:  # a wrong merge: two people's groups become one, and one earlier merge undone
            p, q = rng.choice(num_ids, size=2, replace=False)
            group[q, 0] = group[p, 0]
            r = rng.integers(num_ids)
            group[r, 1] = r * num_cams + 1
        raw = group[pids, cams]
        raw = np.where(rng.random(len(pids)) < 0.08 - 0.06 * epoch / epochs, -1, raw)
        kept = raw >= 0
        out = np.full(len(pids), -1, dtype=np.int64)
        out[kept] = np.unique(raw[kept], return_inverse=True)[1]
        labels[epoch] = out
    return labels


def market_run(folder: Path):
    """(RunState, a description): a run folder of Market's sizes (module docstring) and its state."""
    from PIL import Image

    from lwtgpf.data import Record, ReidDataset
    from lwtgpf.models import build_model
    from lwtgpf.run_folder import RANKED_LIST_LENGTH, RunFolder

    m = MARKET
    feats, pids, cams = make_features(m["train"], m["ids"], m["cameras"])
    images = folder / "crops"
    images.mkdir()
    rng = np.random.default_rng(0)
    train = []
    for i in range(m["train"]):  # a real file per crop: hovering decodes it as it would a Market crop
        path = images / f"{pids[i]:04d}_c{cams[i] + 1}s1_{i:06d}_00.jpg"
        Image.fromarray(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)).resize((64, 128)).save(path, quality=70)
        train.append(Record(str(path), int(pids[i]), int(cams[i])))
    query = [Record(train[i % m["train"]].path, int(pids[i % m["train"]]), int(cams[i % m["train"]]))
             for i in range(m["query"])]
    gallery = [Record(train[(7 * i) % m["train"]].path, int(pids[(7 * i) % m["train"]]),
                      int(cams[(7 * i) % m["train"]])) for i in range(m["gallery"])]
    dataset = ReidDataset("market-size", str(images), m["cameras"], train, query, gallery)
    cfg = load_config("synthetic", {"train.epochs": m["epochs"], "train.eval_every": 10})
    run = RunFolder(folder / "run")
    run.create(cfg)
    labels = simulated_labels(pids, cams, m["epochs"])
    for epoch in range(1, m["epochs"] + 1):
        kept = epoch in KEPT
        epoch_feats = make_features(m["train"], m["ids"], m["cameras"], camera_scale=1 - 0.8 * epoch / m["epochs"],
                                    feature_seed=epoch)[0] if kept else None
        ranking = None
        if kept:
            topk = rng.integers(0, m["gallery"], (m["query"], RANKED_LIST_LENGTH))
            ranking = {"topk": topk, "topk_distance": np.sort(rng.random(topk.shape), axis=1).astype(np.float32),
                       "per_query_ap": rng.random(m["query"]), "mAP": 0.5, "mINP": 0.2, "R1": 0.7, "R5": 0.8,
                       "R10": 0.9, "cmc": np.linspace(0.7, 1, 50)}
        run.write_epoch(epoch, labels[epoch], train_features=epoch_feats, ranking=ranking)
    history = [{"epoch": e, "nmi": 0.8 + 0.15 * e / m["epochs"], "num_clusters": int(labels[e].max()) + 1,
                "outlier_fraction": float((labels[e] < 0).mean())} for e in labels]
    run.write_history(history)
    run.unlock()
    model = build_model(cfg, m["cameras"]).eval()
    state = RunState(cfg, dataset, model, "cpu", run=run)
    state._history = history_of(run)
    size = run.epochs_size() / 2**20
    return state, (f"{m['train']} train crops, {m['ids']} people, {m['cameras']} cameras, {m['epochs']} epochs of "
                   f"labels, features and rankings kept at epochs {list(KEPT)}: epochs/ holds {size:.0f} MB")


def history_of(run) -> list[dict]:
    return run.read_history()


def image_sent(view) -> None:
    """What a browser waits for after an event: the figure rendered (Agg), encoded as the PNG diff and
    handed to the comm (ipympl's `draw` does all three; a browser asks for it after `draw_idle`)."""
    view.canvas.draw()


def market_table(repeats: int, umap_epochs: int) -> tuple[str, list[tuple[str, float, str]]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        state, description = market_run(Path(tmp))
        for epoch in KEPT:  # the embedding of every kept epoch, once (what a first visit costs: below)
            state.go_to(epoch)
            if epoch == KEPT[-1]:
                first_fit = timed(lambda: state.embedding(n_epochs=umap_epochs))
            else:
                state.embedding(n_epochs=umap_epochs)
        # a fresh session on that folder: nothing in memory, the kept embeddings on disk
        state = RunState(state.cfg, state.dataset, state.model, "cpu", run=state.run)
        state._history = history_of(state.run)
        bench = Workbench(state, umap_epochs=umap_epochs)
        names = list(bench.views)
        bench.tab.selected_index = names.index("proxy_umap")
        umap = bench.views["proxy_umap"]
        image_sent(umap)
        xy = state.embedding(n_epochs=umap_epochs).crops
        points = [xy[i] for i in np.random.default_rng(1).choice(len(xy), size=repeats, replace=False)]

        rows.append(("floor: render + encode the UMAP figure, no handler", median_ms([lambda: image_sent(umap)], repeats),
                     "floor"))
        rows.append(("hover a crop: its picture beside the plot",
                     median_ms([lambda p=p: umap.send_mouse("motion_notify", *p) for p in points], repeats),
                     "< 200 ms"))

        def click(p) -> None:
            umap.send_mouse("button_press", *p, buttons=1)
            umap.send_mouse("button_release", *p)
            image_sent(umap)

        rows.append(("click a crop: select it, circle it, its crops shown",
                     median_ms([lambda p=p: click(p) for p in points], repeats), "< 200 ms"))
        lo, hi = xy.min(0), xy.max(0)

        def box(i: int) -> None:
            a, b = lo + (0.1 + 0.02 * i) * (hi - lo), lo + (0.5 + 0.02 * i) * (hi - lo)
            umap.send_mouse("button_press", *a, buttons=1)
            umap.send_mouse("motion_notify", *b, buttons=1)
            umap.send_mouse("button_release", *b)
            image_sent(umap)

        rows.append(("drag a box over a quarter of the plot: select its crops",
                     median_ms([lambda i=i: box(i) for i in range(repeats)], repeats), "< 200 ms"))
        rows.append((f"   ({len(bench.selection.crops)} crops selected by the last box)", float("nan"), ""))

        def switch(epoch: int, view: str) -> None:
            bench.tab.selected_index = names.index(view)
            bench.go_to(epoch)
            image_sent(bench.views[view])

        cycle = [KEPT[1], KEPT[2], KEPT[3], KEPT[4]]
        for view in ("proxy_umap", "cluster_explorer", "lineage", "camera_pairs", "purity_dashboard"):
            switch(KEPT[-1], view)
            rows.append((f"switch epoch, {bench.views[view].title} on screen (features and UMAP kept)",
                         median_ms([lambda e=e, v=view: switch(e, v) for e in cycle], repeats), "< 1000 ms"))
        state.go_to(KEPT[-1])
        rows.append((f"   first visit of an epoch in the UMAP: the fit itself ({len(xy)} crops + proxies)",
                     1000 * first_fit, "once per epoch, kept"))
        switch(KEPT[-1], "lineage")
        pairs = [(a, b) for a, b in zip(range(1, 50, 3), range(12, 51, 2))][:repeats]

        def lineage(a: int, b: int) -> None:
            bench.views["lineage"].other.value = b
            bench.go_to(a)
            image_sent(bench.views["lineage"])

        rows.append(("lineage between two epochs: flows, events, alluvial (new pair each time)",
                     median_ms([lambda a=a, b=b: lineage(a, b) for a, b in pairs], repeats), "< 1000 ms"))
        rows.append(("   of which: lineage() alone, uncached",
                     median_ms([lambda a=a, b=b: history_lineage(state, a, b) for a, b in pairs], repeats), ""))
    return description, rows


def history_lineage(state: RunState, a: int, b: int) -> None:
    from lwtgpf.workbench import lineage

    lineage(state.labels(a), state.labels(b), a, b)


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
    parser.add_argument("--skip-market", action="store_true", help="skip table 0 (the Market-size Workbench)")
    parser.add_argument("--market-umap-epochs", type=int, default=UMAP_EPOCHS,
                        help="UMAP optimisation epochs of table 0's embeddings")
    parser.add_argument("--skip-umap-baseline", action="store_true",
                        help="skip umap-learn's own NN-descent fit of the --n features (minutes at 13k)")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; load average at start {open('/proc/loadavg').read().split()[:3]}\n")
    jit_row = umap_jit_warmup()  # before any widget fits a UMAP, so that the JIT shows on its own

    if not args.skip_market:
        description, rows = market_table(args.repeats, args.market_umap_epochs)
        print(f"0. a Market-size run in a Workbench: {description}")
        print(f"   (median of {args.repeats}; from the mouse message to the image the browser receives)")
        print(f"{'action':<84} {'ms':>8}  target")
        for name, ms, target in rows:
            print(f"{name:<84} {'' if ms != ms else f'{ms:8.1f}':>8}  {target}")
        print()

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
    print(f"\nload average at end {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
