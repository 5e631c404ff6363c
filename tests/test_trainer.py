"""The training engine on the small synthetic benchmark: steps, methods, run folder, learning."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lwtgpf.config import ConfigError, load_config
from lwtgpf.engine.checkpoint import load_checkpoint
from lwtgpf.engine.trainer import Trainer
from lwtgpf.run_folder import RunFolderError


def test_steps_leave_plain_readable_state(tiny_config):
    trainer = Trainer(tiny_config())
    n = len(trainer.dataset.train)

    feats = trainer.extract_train_features()
    assert feats.shape == (n, 6, trainer.model.feature_dim)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(n, 6), atol=1e-4)

    pseudo = trainer.cluster()
    assert pseudo.labels.shape == (n,)
    proxies = pseudo.proxies
    kept = proxies.proxy_of_sample >= 0
    assert np.array_equal(kept, pseudo.labels >= 0)
    # every proxy is one (cluster, camera) pair of the samples it holds
    assert np.array_equal(proxies.cluster_of_proxy[proxies.proxy_of_sample[kept]], pseudo.labels[kept])
    camids = np.array([r.camid for r in trainer.dataset.train])
    assert np.array_equal(proxies.camera_of_proxy[proxies.proxy_of_sample[kept]], camids[kept])

    memory = trainer.build_memory()
    assert memory.features.shape == (6, proxies.num_proxies, trainer.model.feature_dim)

    before = [p.detach().clone() for p in trainer.model.parameters()]
    memory_before = memory.features.clone()
    row = trainer.train_epoch()
    assert np.isfinite(row["loss"]) and row["lr"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert not torch.equal(memory_before, trainer.memory.features)  # momentum updates happened

    results = trainer.evaluate()
    assert 0.0 <= results["mAP"] <= 1.0 and 0.0 <= results["R1"] <= 1.0


@pytest.mark.parametrize(
    "method, num_features, camera_aware",
    [("o2cap", 1, True), ("cluster_contrast", 1, False), ("supervised", 6, True)],
)
def test_methods_are_configurations_of_one_loop(tiny_config, method, num_features, camera_aware):
    trainer = Trainer(tiny_config(method=method, **{"train.epochs": 1}))
    row = trainer.step()
    assert row["epoch"] == 1 and np.isfinite(row["loss"])
    proxies = trainer.pseudo.proxies
    assert trainer.memory.features.shape[0] == num_features
    if not camera_aware:
        assert proxies.num_proxies == proxies.num_clusters
    if method == "supervised":  # true identities, split by camera
        pids = np.array([r.pid for r in trainer.dataset.train])
        assert proxies.num_clusters == len(np.unique(pids))
        assert proxies.num_proxies == len({(r.pid, r.camid) for r in trainer.dataset.train})
        assert row["nmi"] == pytest.approx(1.0)


def test_classifier_method_learns_identities_and_resumes_its_weights(tiny_config, tmp_path):
    cfg = tiny_config(method="classifier", **{"train.epochs": 2, "data.iters_per_epoch": 6, "loss.temperature": 0.05})
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    first = trainer.step()
    assert trainer.memory is None  # no proxy memory: a learned classifier over the true identities
    assert trainer.features is None  # so no per-epoch extraction either
    assert trainer.pseudo.proxies.num_proxies == len({r.pid for r in trainer.dataset.train})
    assert {"ce_global", "ce_parts"} <= set(first)
    trainer.step()
    assert trainer.step_losses[-1] < trainer.step_losses[0] or trainer.history[1]["loss"] < first["loss"]
    with pytest.raises(RunFolderError, match=r"is in use by process \d+ .*one writer per run folder"):
        Trainer(cfg, run_dir=tmp_path / "run", resume=True)  # the first trainer still writes there
    trainer.close()
    resumed = Trainer(cfg, run_dir=tmp_path / "run", resume=True)
    assert torch.equal(resumed.classifier.weight, trainer.classifier.weight)


def test_fit_writes_a_run_folder_and_refuses_to_overwrite_it(tiny_config, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(**{"train.eval_every": 1})
    metrics = Trainer(cfg, run_dir=run).fit()
    assert set(metrics) == {"mAP", "R1", "R5", "R10", "mINP", "epochs"} and metrics["epochs"] == 2
    assert json.loads((run / "metrics.json").read_text()) == metrics
    log = json.loads((run / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2]
    for key in ("loss", "lr", "num_clusters", "num_proxies", "outlier_fraction", "nmi", "mAP", "sec_train"):
        assert key in log[0], key
    assert (run / "log.csv").read_text().count("\n") == 3
    assert load_config(run / "config.yaml") == cfg
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 2
    with pytest.raises(RunFolderError, match="holds a run; pick a new --out or pass --resume"):
        Trainer(cfg, run_dir=run)


def test_unknown_method_is_a_clear_error(tiny_config):
    with pytest.raises(ConfigError, match="method 'dbscan' is not one of: classifier, cluster_contrast, lwtgpf"):
        tiny_config(method="dbscan")
