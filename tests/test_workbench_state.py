"""RunState (lwtgpf.workbench): the workbench's view of a live Trainer and of a run folder it wrote, at any epoch."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lwtgpf.cluster import pseudo_label
from lwtgpf.config import load_config
from lwtgpf.engine.trainer import Trainer
from lwtgpf.run_folder import RunFolderError
from lwtgpf.workbench import Reclusterer, RunState, cluster_summaries



def test_live_state_follows_the_trainer_and_caches_per_epoch(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(), run_dir=tmp_path / "run")
    state = RunState.from_trainer(trainer)
    n = len(trainer.dataset.train)
    # before the first step: features extracted from the model once, clustered once
    assert state.epoch == 0 and state.history == []
    feats = state.train_features()
    assert feats.shape == (n, 6, trainer.model.feature_dim)
    assert state.train_features() is feats and state.pseudo_labels() is state.pseudo_labels()
    ranking = state.ranking(5)
    assert state.ranking(5) is ranking

    trainer.step()
    assert state.epoch == 1 and len(state.history) == 1
    assert state.train_features() is trainer.features and state.pseudo_labels() is trainer.pseudo
    assert state.ranking(5) is not ranking  # a new epoch recomputes

    # a folder state opened mid-run catches up when the run writes its next checkpoint
    folder = RunState.from_run_dir(tmp_path / "run")
    assert folder.epoch == 1 and not folder.sync()
    trainer.step()
    assert folder.sync() and folder.epoch == 2 and [r["epoch"] for r in folder.history] == [1, 2]
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(folder.model.state_dict()[key], value), key


def test_run_folder_state_is_what_the_trainer_saw(finished_run):
    trainer, run_dir = finished_run
    state = RunState.from_run_dir(run_dir)
    assert state.epochs == [1] and state.epoch == 1
    assert state.history == json.loads((run_dir / "log.json").read_text())
    assert not state.model.training
    # the labels epoch 1 trained on, exactly; the features they came from, in float16
    assert np.array_equal(state.pseudo_labels().labels, trainer.pseudo.labels)
    assert state.features_source() == "epoch 1"
    torch.testing.assert_close(state.train_features()[:, 0], trainer.features[:, 0], atol=2e-3, rtol=0)
    # the trainer evaluated the model after epoch 1 and kept its ranking: the same mAP and lists
    assert state.test_source() == "epoch 1"
    assert state.ranking(10)["mAP"] == pytest.approx(state.history[-1]["mAP"], abs=1e-12)
    live = RunState.from_trainer(trainer).ranking(10)
    assert np.array_equal(state.ranking(10)["topk"], live["topk"])


def test_the_epoch_cursor_goes_back_in_time(tiny_config, tmp_path):
    cfg = tiny_config(**{"train.epochs": 3, "train.eval_every": 1, "train.keep_features": "eval",
                         "train.keep_weights": True})
    trainer = Trainer(cfg, run_dir=tmp_path / "run", verbose=False)
    features, weights = {}, {}
    for _ in range(3):
        trainer.step()
        features[trainer.epoch] = trainer.features[:, 0].clone()
        weights[trainer.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    state = RunState.from_run_dir(tmp_path / "run")
    assert state.epochs == [1, 2, 3] and state.epoch == 3
    for epoch in (1, 2, 3):
        state.go_to(epoch)
        assert state.epoch == epoch
        assert np.array_equal(state.labels(), trainer.labels_history[epoch])
        assert state.pseudo_labels().quality["nmi"] == pytest.approx(trainer.history[epoch - 1]["nmi"])
        torch.testing.assert_close(state.train_features()[:, 0], features[epoch], atol=2e-3, rtol=0)
        assert state.ranking(5)["mAP"] == pytest.approx(trainer.history[epoch - 1]["mAP"], abs=1e-12)
        assert state.model_source() == f"epoch {epoch}"
        model = state._model_at_cursor()
        for key, value in weights[epoch].items():
            assert torch.equal(model.state_dict()[key].cpu(), value.cpu()), (epoch, key)
    with pytest.raises(ValueError, match="epoch 7 is not stored; this run has epochs 1..3"):
        state.go_to(7)
    # across epochs: the lineage of consecutive epochs accounts for every crop
    lineage = state.lineage(1, 2)
    assert lineage.flows[:, 2].sum() == len(state.dataset.train)
    assert sum(lineage.counts_a.values()) == len(set(trainer.labels_history[1].tolist()) - {-1})
    series = state.camera_pair_series()
    assert sorted(series) == [1, 2, 3] and all(0 <= v[0] <= 1 for v in series.values())
    worst = state.worst_identities(count=3)
    assert len(worst) == 3 and worst[0][1] >= worst[-1][1]
    steps = state.trajectory(state.identity_crops(worst[0][0]))
    assert [s.epoch for s in steps] == [1, 2, 3]


def test_a_cadence_keeps_features_of_some_epochs_and_labels_of_all(tiny_config, tmp_path):
    cfg = tiny_config(**{"train.epochs": 4, "train.eval_every": 2})  # keep_features "eval": 1, 2, 4
    Trainer(cfg, run_dir=tmp_path / "run", verbose=False).fit()
    run_dir = tmp_path / "run"
    kept = sorted(p.parent.name for p in run_dir.glob("epochs/*/train_features.npy"))
    assert kept == ["001", "002", "004"]
    assert sorted(p.parent.name for p in run_dir.glob("epochs/*/labels.npy")) == ["001", "002", "003", "004"]
    assert not list(run_dir.glob("epochs/*/weights.pt"))  # keep_weights is off by default
    state = RunState.from_run_dir(run_dir)
    state.go_to(3)
    assert state.features_source() == "epoch 2" and state.test_source() == "epoch 2"
    assert "stored its labels and features" in (run_dir / "train.log").read_text()


def test_from_run_dir_names_what_is_missing(tmp_path):
    (tmp_path / "config.yaml").write_text("method: lwtgpf\n")
    with pytest.raises(RunFolderError, match="checkpoints/last.pt is missing"):
        RunState.from_run_dir(tmp_path)


def test_recluster_equals_pseudo_label_and_reuses_the_distance(finished_run):
    trainer, _ = finished_run
    state = RunState.from_trainer(trainer)
    same = state.recluster()
    assert np.array_equal(same.labels, trainer.pseudo.labels)
    assert same.quality == pytest.approx(trainer.pseudo.quality, nan_ok=True)

    strict = state.recluster(eps=0.3)
    assert "knn" not in strict.timings and "jaccard" not in strict.timings
    assert strict.distance is same.distance
    assert not np.array_equal(strict.labels, same.labels)
    assert (strict.labels < 0).mean() > (same.labels < 0).mean()  # a smaller eps leaves more outliers

    other_k2 = state.recluster(k2=2)
    assert "jaccard" in other_k2.timings and "knn" not in other_k2.timings
    assert "knn" in state.recluster(k1=8).timings
    with pytest.raises(ValueError, match="eps"):
        state.recluster(eps=1.0)


def test_reclusterer_matches_pseudo_label_on_clustered_points():
    gen = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(12, 32, generator=gen), dim=1)
    pids = torch.arange(12).repeat_interleave(10)
    feats = torch.nn.functional.normalize(centres[pids] + 0.15 * torch.randn(120, 32, generator=gen), dim=1)
    camids = np.arange(120) % 3
    cfg = load_config(None, {"cluster.k1": 8, "cluster.k2": 3, "cluster.min_samples": 3}).cluster
    expected = pseudo_label(feats, camids, cfg, 3, true_pids=pids.numpy())
    got = Reclusterer(feats, camids, 3, true_pids=pids.numpy()).run(cfg.eps, cfg.min_samples, cfg.k1, cfg.k2)
    assert np.array_equal(got.labels, expected.labels)
    assert np.array_equal(got.proxies.proxy_of_sample, expected.proxies.proxy_of_sample)
    assert got.quality["nmi"] > 0.9  # tight blobs: the test data is clusterable at all


def test_attention_of_a_crop_covers_every_block(finished_run):
    trainer, _ = finished_run
    state = RunState.from_trainer(trainer)
    crop = state.attention("query", 3)
    assert crop.blocks == ((0, 0), (1, 0), (2, 0), (2, 1), (3, 0))  # lewinvit_tiny depths (1, 1, 2, 1)
    assert crop.image.shape == (64, 32, 3) and crop.image.dtype == np.uint8
    amap = crop.map(2, 1)
    assert amap.shift == 3 and amap.weights.shape[0] == 1 and amap.weights.shape[-1] == 49
    real_queries = amap.token_grid_positions()[..., 0] >= 0  # (nW, N): padding queries may be left at 0
    row_sums = amap.weights[0].sum(-1).permute(1, 0, 2)[:, real_queries]  # (heads, real queries)
    assert torch.allclose(row_sums, torch.ones(()), atol=1e-4)
    assert state.attention("query", 3) is crop
    assert state.attention("query", 3, branch=1).map(3, 0).weights is not crop.map(3, 0).weights
    with pytest.raises(IndexError, match="query has"):
        state.attention("query", 10_000)
    bare = RunState(trainer.cfg, trainer.dataset, torch.nn.Identity(), "cpu")
    with pytest.raises(ValueError, match="no window attention"):
        bare.attention_blocks()


def test_rank_list_is_the_protocol_ranking(finished_run):
    trainer, _ = finished_run
    state = RunState.from_trainer(trainer)
    q_feats, g_feats = (torch.nn.functional.normalize(f, dim=1) for f in state.test_features())
    gallery = trainer.dataset.gallery
    for q, query in enumerate(trainer.dataset.query):
        ranked = state.rank_list(q, 10)
        # brute force: every gallery crop by distance, same person + same camera dropped
        distance = (2 - 2 * q_feats[q] @ g_feats.T).numpy()
        kept = [g for g in np.argsort(distance, kind="stable")
                if not (gallery[g].pid == query.pid and gallery[g].camid == query.camid)]
        assert ranked.gallery_index.tolist() == kept[:10]
        assert np.allclose(ranked.distance, distance[kept[:10]], atol=1e-5)
        assert np.array_equal(ranked.correct, [gallery[g].pid == query.pid for g in kept[:10]])
        assert ranked.query is query and ranked.gallery == tuple(gallery[g] for g in kept[:10])


def test_cluster_summaries_order_purest_first():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, -1, 2, 2])
    pids = np.array([5, 5, 5, 1, 2, 2, 3, 9, 4, 4])
    cams = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 1])
    summaries = cluster_summaries(labels, pids, cams)
    assert [s.cluster for s in summaries] == [0, 2, 1]  # purity 1 (3 crops), 1 (2 crops), 0.5
    assert summaries[2].purity == 0.5 and summaries[2].num_identities == 3 and summaries[2].num_cameras == 2
    assert sorted(summaries[0].members) == [0, 1, 2]
