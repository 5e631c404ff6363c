"""The workbench widgets, built on a live Trainer and on the run folder it wrote, driven from code.

Every check compares what the widget shows (its PNG bytes, its text) before and after a change, so a
widget that ignores a control fails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lwtgpf.engine.trainer import Trainer
from lwtgpf.workbench import RunState
from lwtgpf.viz.workbench_figures import query_attention
from widgets import AttentionWindows, ClusterExplorer, ProxyUMAP, PurityDashboard, RankList, Workbench

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UMAP_EPOCHS = 30  # a small fit: the embedding only has to exist and be cached


@pytest.fixture(scope="module", params=["live", "folder"])
def state(request, finished_run):
    trainer, run_dir = finished_run
    return RunState.from_trainer(trainer) if request.param == "live" else RunState.from_run_dir(run_dir)


def shown(widget) -> bytes:
    png = bytes(widget.image.value)  # ipywidgets keeps it as a memoryview
    assert png.startswith(PNG_MAGIC), "the widget shows no PNG"
    return png


def assert_saves_png(widget, tmp_path) -> None:
    path = widget.save_figure(tmp_path / f"{type(widget).__name__}.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_attention_windows(state, tmp_path):
    w = AttentionWindows(state, split="query", index=2)
    before = shown(w)
    w.head.value = 0
    after_head = shown(w)
    assert after_head != before
    w.stage.value = 2  # stage 2 of lewinvit_tiny has a plain and a shifted block
    assert w.block.options == (("0", 0), ("1 (shifted)", 1))
    amap = w.current().map(2, 0)
    assert (w.row.max, w.col.max) == (amap.grid_hw[0] - 1, amap.grid_hw[1] - 1)
    plain = shown(w)
    w.block.value = 1
    assert shown(w) != plain and "shifted by 3" in w.figure.axes[0].get_title()
    w.stage.value = 0
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
            # padding keys keep their share: the whole row of the softmax is there
            assert drawn.sum() == pytest.approx(1.0, abs=1e-4)


def test_proxy_umap(state, tmp_path):
    w = ProxyUMAP(state, n_epochs=UMAP_EPOCHS)
    embedding = state.embedding(n_neighbors=15, n_epochs=UMAP_EPOCHS, seed=0)
    assert embedding.crops.shape == (len(state.dataset.train), 2)
    assert embedding.proxies.shape == (state.pseudo_labels().proxies.num_proxies, 2)
    before = shown(w)
    w.colour.value = "true identity"
    assert shown(w) != before
    by_id = shown(w)
    w.select("crop", 7)
    proxy, members = w.selected_crops()
    assert members[0] == 7 and proxy == state.pseudo_labels().proxies.proxy_of_sample[7]
    assert shown(w) != by_id
    w.select("proxy", 2)
    _, members = w.selected_crops()
    assert np.all(state.pseudo_labels().proxies.proxy_of_sample[members] == 2) and len(members) > 0
    w.show.value = "crops"
    assert w.select_nearest(*embedding.crops[11]) == ("crop", 11)
    assert state.embedding(n_neighbors=15, n_epochs=UMAP_EPOCHS, seed=0) is embedding  # fitted once
    assert_saves_png(w, tmp_path)


def test_purity_dashboard(state, tmp_path):
    w = PurityDashboard(state)
    assert len(w.grid.children) == 5 and all(bytes(i.value).startswith(PNG_MAGIC) for i in w.grid.children)
    panel_pngs = {name: bytes(image.value) for name, image in w.panel_images.items()}
    assert len(set(panel_pngs.values())) == 5
    assert f"{state.history[-1]['nmi']:.3g}" in w.table.value
    w.panels.value = ("NMI / ARI", "mAP / R1")
    assert w.grid.children == (w.panel_images["NMI / ARI"], w.panel_images["mAP / R1"])
    assert {n: bytes(i.value) for n, i in w.panel_images.items()} == panel_pngs  # rearranged, not re-rendered
    assert len([ax for ax in w.current_figure().axes if ax.axison]) == 2
    assert_saves_png(w, tmp_path)


def test_dashboard_grows_as_the_trainer_steps(tiny_config):
    trainer = Trainer(tiny_config(**{"train.epochs": 2}))
    w = PurityDashboard(RunState.from_trainer(trainer))
    assert "no epoch completed yet" in w.current_figure().texts[0].get_text()
    empty = bytes(w.grid.children[0].value)
    pngs = []
    for _ in range(2):
        trainer.step()
        w.refresh()
        pngs.append(bytes(w.panel_images["NMI / ARI"].value))
    assert len({empty, *pngs}) == 3
    nmi_line = w.current_figure().axes[0].lines[0]
    assert list(nmi_line.get_xdata()) == [1, 2]
    assert list(nmi_line.get_ydata()) == [row["nmi"] for row in trainer.history]


def test_cluster_explorer(state, tmp_path):
    w = ClusterExplorer(state)
    first = w.pseudo
    assert np.array_equal(first.labels, state.pseudo_labels().labels)  # the run's settings: its labels
    before, metrics = shown(w), w.metrics.value
    w.eps.value = 0.3
    assert not np.array_equal(w.pseudo.labels, first.labels)
    assert "knn" not in w.pseudo.timings and "Jaccard distance reused" in w.metrics.value
    assert w.metrics.value != metrics and shown(w) != before
    strict = w.pseudo
    w.examples.value = 1  # fewer example rows: no re-clustering
    assert w.pseudo is strict and shown(w) != before
    w.k1.value = 12
    assert "knn" in w.pseudo.timings
    assert_saves_png(w, tmp_path)


def test_rank_list(state, tmp_path):
    w = RankList(state, query=0, k=5)
    before = shown(w)
    ranked, k = w.current()
    assert k == 5 and f"{int(ranked.correct[:5].sum())}/5 correct" in w.figure.texts[0].get_text()
    w.query.value = 4
    assert shown(w) != before and w.current()[0].query is state.dataset.query[4]
    five = shown(w)
    w.k.value = 8
    assert shown(w) != five
    assert_saves_png(w, tmp_path)


def test_workbench_tabs_refresh_and_save(state, tmp_path):
    bench = Workbench(state, umap_epochs=UMAP_EPOCHS)
    assert len(bench.tab.children) == 5
    assert [bench.tab.get_title(i) for i in range(5)] == [v.title for v in bench.views.values()]
    bench.refresh()
    paths = bench.save_figures(tmp_path / "figures")
    assert sorted(p.name for p in paths.values()) == sorted(f"{name}.png" for name in bench.views)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths.values())


def test_attention_view_explains_a_model_without_windows(finished_run, tmp_path):
    trainer, _ = finished_run
    state = RunState(trainer.cfg, trainer.dataset, torch.nn.Identity(), "cpu")
    w = AttentionWindows(state)
    assert "no window attention" in w.figure.texts[0].get_text()
    assert_saves_png(w, tmp_path)
