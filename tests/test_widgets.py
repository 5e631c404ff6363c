"""The workbench widgets, on a live Trainer and on the run folder it wrote, driven as a user drives them:
controls from code, the mouse through the same ipympl comm messages a browser sends (`send_mouse`).

Every check compares what a view shows (its figure rendered to PNG, its text) before and after, so a
view that ignores a control, a click or the shared selection fails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lwtgpf.engine.trainer import Trainer
from lwtgpf.viz.workbench_figures import figure_png, query_attention
from lwtgpf.workbench import RunState
from widgets import (
    AttentionWindows,
    CameraPairsView,
    ClusterExplorer,
    LineageView,
    ProxyUMAP,
    PurityDashboard,
    RankList,
    Selection,
    TrajectoryView,
    Workbench,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UMAP_EPOCHS = 30  # a small fit: the embedding only has to exist and be cached


@pytest.fixture(scope="module")
def three_epochs(synthetic_root, tmp_path_factory):
    """A three-epoch run that kept every epoch's features, rankings and weights."""
    from conftest import TINY
    from lwtgpf.config import load_config

    cfg = load_config("synthetic", {**TINY, "data.root": str(synthetic_root), "train.epochs": 3,
                                    "train.eval_every": 1, "train.keep_features": "all", "train.keep_weights": True})
    run_dir = tmp_path_factory.mktemp("widgets") / "run"
    trainer = Trainer(cfg, run_dir=run_dir, verbose=False)
    trainer.fit()
    return trainer, run_dir


@pytest.fixture(scope="module", params=["live", "folder"])
def state(request, three_epochs):
    trainer, run_dir = three_epochs
    return RunState.from_trainer(trainer) if request.param == "live" else RunState.from_run_dir(run_dir)


def shown(view) -> bytes:
    """What the view's canvas shows now, as PNG bytes (its live figure)."""
    png = figure_png(view.figure)
    assert png.startswith(PNG_MAGIC)
    return png


def assert_saves_png(view, tmp_path) -> None:
    path = view.save_figure(tmp_path / f"{type(view).__name__}.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def click(view, x: float, y: float, ax_index: int = 0) -> None:
    view.send_mouse("button_press", x, y, ax_index, buttons=1)
    view.send_mouse("button_release", x, y, ax_index)


def drag(view, start, end, ax_index: int = 0) -> None:
    view.send_mouse("button_press", *start, ax_index, buttons=1)
    view.send_mouse("motion_notify", *((np.asarray(start) + np.asarray(end)) / 2), ax_index, buttons=1)
    view.send_mouse("motion_notify", *end, ax_index, buttons=1)
    view.send_mouse("button_release", *end, ax_index)


# ---- each view, with its controls and its mouse ----------------------------------------------------


def test_attention_windows_and_a_click_on_a_token(state, tmp_path):
    state.go_to(state.latest)
    w = AttentionWindows(state, split="query", index=2)
    before = shown(w)
    w.head.value = 0
    assert shown(w) != before
    w.stage.value = 2  # stage 2 of lewinvit_tiny has a plain and a shifted block
    assert w.block.options == (("0", 0), ("1 (shifted)", 1))
    amap = w.current().map(2, 0)
    assert (w.row.max, w.col.max) == (amap.grid_hw[0] - 1, amap.grid_hw[1] - 1)
    plain = shown(w)
    w.block.value = 1
    assert shown(w) != plain and "shifted by 3" in w.figure.axes[0].get_title()
    w.stage.value = 0
    s = w.current().map(0, 0).stride_px
    click(w, 6.5 * s, 3.5 * s, ax_index=1)  # the token in row 3, column 6 of the right image
    assert (w.row.value, w.col.value) == (3, 6) and "token (3, 6)" in w.figure.axes[1].get_title()
    w.row.value, w.col.value = 15, 7  # bottom-right token: its window reaches into the padding
    assert "padded 21x14" in w.figure.axes[0].get_title()
    before_crop = shown(w)
    w.crop.value = 5
    assert shown(w) != before_crop and w.current().record is state.dataset.query[5]
    assert_saves_png(w, tmp_path)


def test_query_attention_matches_the_model_geometry(state):
    crop = state.attention("gallery", 1)
    for stage, block in crop.blocks:
        amap = crop.map(stage, block)
        H, W = amap.grid_hw
        for row, col in [(0, 0), (H // 2, W // 2), (H - 1, W - 1)]:
            drawn = query_attention(crop, stage, block, head=0, query=(row, col))
            reference = amap.query_map(0, row, col)[0].numpy()  # the model's own map, padding dropped
            assert np.allclose(drawn[:H, :W], reference, atol=1e-6), (stage, block, row, col)
            assert drawn.sum() == pytest.approx(1.0, abs=1e-4)  # padding keys keep their share


def test_proxy_umap_hover_click_box_and_lasso(state, tmp_path):
    w = ProxyUMAP(state, n_epochs=UMAP_EPOCHS)
    embedding = state.embedding(n_neighbors=15, n_epochs=UMAP_EPOCHS, seed=0)
    assert embedding.crops.shape == (len(state.dataset.train), 2)
    assert embedding.proxies.shape == (state.pseudo_labels().proxies.num_proxies, 2)
    before = shown(w)
    w.colour.value = "true identity"
    assert shown(w) != before
    w.layers.value = "crops"
    xy = embedding.crops
    w.send_mouse("motion_notify", *xy[11])  # hover: the crop appears beside the plot, nothing redraws
    assert w.preview_text.value.startswith("crop 11<br>") and bytes(w.preview.value).startswith(PNG_MAGIC)
    unselected = shown(w)
    click(w, *xy[11])
    assert w.selection.crops == (11,) and "crop 11" in w.selection.source
    assert shown(w) != unselected  # circled, and its crop on the right
    lo, hi = xy.min(0), xy.max(0)
    drag(w, lo + 0.2 * (hi - lo), lo + 0.8 * (hi - lo))
    inside = np.flatnonzero(np.all((xy >= lo + 0.2 * (hi - lo)) & (xy <= lo + 0.8 * (hi - lo)), axis=1))
    assert w.selection.source == "proxy UMAP (box)" and set(w.selection.crops) == set(inside.tolist())
    w.tool.value = "lasso"
    triangle = [lo, (lo[0], hi[1]), hi]
    for kind, point in [("button_press", triangle[0]), *[("motion_notify", p) for p in triangle[1:]],
                        ("motion_notify", triangle[0]), ("button_release", triangle[0])]:
        w.send_mouse(kind, *point, buttons=1 if kind != "button_release" else 0)
    assert w.selection.source == "proxy UMAP (lasso)" and 0 < len(w.selection.crops) < len(xy)
    w.select("proxy", 2)
    assert np.all(state.pseudo_labels().proxies.proxy_of_sample[w.selection.indices] == 2)
    assert state.embedding(n_neighbors=15, n_epochs=UMAP_EPOCHS, seed=0) is embedding  # fitted once
    assert_saves_png(w, tmp_path)


def test_purity_dashboard_marks_the_cursor_and_a_click_moves_it(state, tmp_path):
    state.go_to(state.latest)
    w = PurityDashboard(state)
    assert f"{state.history[-1]['nmi']:.3g}" in w.table.value
    last = shown(w)
    click(w, 1.0, float(np.mean(w.figure.axes[0].get_ylim())))  # epoch 1 in the first panel
    assert state.epoch == 1 and shown(w) != last
    w.panels.value = ("NMI / ARI", "mAP / R1")
    assert len([ax for ax in w.figure.axes if ax.axison]) == 2
    state.go_to(state.latest)
    assert_saves_png(w, tmp_path)


def test_dashboard_grows_as_the_trainer_steps(tiny_config):
    trainer = Trainer(tiny_config(**{"train.epochs": 2}), verbose=False)
    w = PurityDashboard(RunState.from_trainer(trainer))
    assert "no epoch completed yet" in w.figure.texts[0].get_text()
    pngs = {shown(w)}
    for _ in range(2):
        trainer.step()
        w.refresh()
        pngs.add(shown(w))
    assert len(pngs) == 3
    nmi_line = w.figure.axes[0].lines[0]
    assert list(nmi_line.get_xdata()) == [1, 2]
    assert list(nmi_line.get_ydata()) == [row["nmi"] for row in trainer.history]


def test_cluster_explorer_reclusters_and_a_click_selects_a_cluster(state, tmp_path):
    state.go_to(state.latest)
    selection = Selection()
    w = ClusterExplorer(state, selection=selection)
    first = w.pseudo
    assert np.array_equal(first.labels, state.labels())  # the run's settings: the labels it trained on
    assert "the labels epoch 3 trained on" in w.metrics.value
    before, metrics = shown(w), w.metrics.value
    x0, y0, x1, y1 = w.boxes[0][2:]
    cluster = w.rows[0][0]
    click(w, (x0 + x1) / 2, (y0 + y1) / 2)  # a crop of the first row: the purest cluster
    assert selection.cluster == cluster and selection.epoch == state.epoch
    assert set(selection.crops) == set(np.flatnonzero(first.labels == cluster).tolist())
    assert w.rows[0][0] == -1  # redrawn with the selection on top
    w.eps.value = 0.3  # the first move re-clusters the kept features (kNN + Jaccard) ...
    assert "knn" in w.pseudo.timings and "re-clustered the features of" in w.metrics.value
    assert w.metrics.value != metrics and shown(w) != before
    w.eps.value = 0.35  # ... the next ones reuse the Jaccard distance
    assert "knn" not in w.pseudo.timings and "Jaccard distance reused" in w.metrics.value
    w.k1.value = 12
    assert "knn" in w.pseudo.timings
    assert_saves_png(w, tmp_path)


def test_rank_list_and_a_click_opens_the_crop(state, tmp_path):
    state.go_to(state.latest)
    w = RankList(state, query=0, k=5)
    before = shown(w)
    ranked, k = w.current()
    assert k == 5 and f"{int(ranked.correct[:5].sum())}/5 correct" in w.figure.texts[0].get_text()
    opened = []
    w.on_open = lambda split, index: opened.append((split, index))
    _, _, x0, y0, x1, y1 = w.boxes[2]  # the second gallery crop
    click(w, (x0 + x1) / 2, (y0 + y1) / 2)
    assert opened == [("gallery", int(ranked.gallery_index[1]))]
    w.query.value = 4
    assert shown(w) != before and w.current()[0].query is state.dataset.query[4]
    assert_saves_png(w, tmp_path)


def test_lineage_counts_every_cluster_and_a_click_selects_one(state, tmp_path):
    state.go_to(1)
    w = LineageView(state)
    assert w.epochs() == (1, 2)
    lineage = state.lineage(1, 2)
    assert sum(lineage.counts_a.values()) == lineage.size_a.shape[0]
    node = next(p for p in w.figure.axes[1].patches if (p.get_gid() or "").startswith("a:"))
    cluster = int(node.get_gid()[2:])
    box = node.get_bbox()
    before = shown(w)
    click(w, (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, ax_index=1)
    assert w.selection.cluster == cluster and w.selection.epoch == 1
    assert set(w.selection.crops) == set(state.cluster_crops(cluster, 1).tolist())
    assert shown(w) != before  # framed
    w.other.value = 3
    assert w.epochs() == (1, 3)
    state.go_to(state.latest)
    assert_saves_png(w, tmp_path)


def test_trajectory_follows_the_selected_identity(state, tmp_path):
    state.go_to(state.latest)
    w = TrajectoryView(state)
    worst = state.worst_identities(count=1)[0][0]
    assert f"identity {worst}" in w.figure.axes[0].get_title()
    other = int(np.unique(state.train_pids)[0])
    w.selection.select_identity(other, state.identity_crops(other))
    assert w.figure.axes[0].get_title().startswith(f"identity {other}:") and w.identity.value == other
    click(w, 1.0, 1.0)
    assert state.epoch == 1
    state.go_to(state.latest)
    assert_saves_png(w, tmp_path)


def test_camera_pairs_of_all_crops_and_of_the_selection(state, tmp_path):
    state.go_to(state.latest)
    w = CameraPairsView(state)
    everyone = shown(w)
    assert "all train crops" in w.figure._suptitle.get_text()
    identity = int(state.train_pids[0])
    w.selection.select_identity(identity, state.identity_crops(identity))
    assert f"identity {identity}" in w.figure._suptitle.get_text() and shown(w) != everyone
    assert_saves_png(w, tmp_path)


# ---- the Workbench: one epoch slider, one selection, linked views ----------------------------------


def test_workbench_links_its_views(state, tmp_path):
    state.go_to(state.latest)
    bench = Workbench(state, umap_epochs=UMAP_EPOCHS)
    titles = [bench.tab.get_title(i) for i in range(len(bench.tab.children))]
    assert titles == [v.title for v in bench.views.values()] and len(titles) == 8
    assert not bench.views["proxy_umap"].visible and bench.views["proxy_umap"].stale  # drawn when shown
    bench.tab.selected_index = list(bench.views).index("proxy_umap")
    umap = bench.views["proxy_umap"]
    assert umap.visible and not umap.stale
    xy = state.embedding(n_epochs=UMAP_EPOCHS).crops
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.diag(np.full(len(xy), np.inf))
    crop = int(gaps.min(axis=1).argmax())  # the crop farthest from any other: a click picks it alone
    click(umap, *xy[crop])  # a crop in the UMAP ...
    assert bench.selection.crops == (crop,) and f"crop {crop}" in bench.selected.value
    bench.tab.selected_index = list(bench.views).index("attention_windows")
    attention = bench.views["attention_windows"]
    assert (attention.split.value, attention.crop.value) == ("train", crop)  # ... opens in the attention view
    rank = bench.views["rank_list"]
    bench.tab.selected_index = list(bench.views).index("rank_list")
    _, _, x0, y0, x1, y1 = rank.boxes[1]
    click(rank, (x0 + x1) / 2, (y0 + y1) / 2)  # a gallery crop in the rank list opens there too
    assert bench.tab.selected_index == list(bench.views).index("attention_windows")
    assert (attention.split.value, attention.crop.value) == ("gallery", int(rank.ranked.gallery_index[0]))
    bench.go_to(1)  # the epoch slider: every view follows
    assert bench.epoch.value == 1 and state.epoch == 1
    assert all(view.stale for name, view in bench.views.items() if name != "attention_windows")
    bench.tab.selected_index = list(bench.views).index("lineage")
    assert bench.views["lineage"].epochs() == (1, 2)
    bench.clear.click()
    assert bench.selection.crops == () and "nothing selected" in bench.selected.value
    paths = bench.save_figures(tmp_path / "figures")
    assert sorted(p.name for p in paths.values()) == sorted(f"{name}.png" for name in bench.views)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths.values())
    state.go_to(state.latest)


def test_attention_view_explains_a_model_without_windows(three_epochs, tmp_path):
    trainer, _ = three_epochs
    state = RunState(trainer.cfg, trainer.dataset, torch.nn.Identity(), "cpu")
    w = AttentionWindows(state)
    assert "no window attention" in w.figure.texts[0].get_text()
    assert_saves_png(w, tmp_path)
