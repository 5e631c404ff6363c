"""End to end on the CPU: the recipe of `lwtgpf demo` at test size really learns.

Supervised pretraining (`classifier` method) on labelled people of `synthetic_source`, then LWTGPF on the
unlabelled `synthetic` benchmark from those weights. The final mAP must clearly beat the randomly
initialised network's (which sits at chance: random features group crops by camera).
"""
from __future__ import annotations

import pytest

from lwtgpf.config import load_config
from lwtgpf.data.synthetic import generate_synthetic
from lwtgpf.engine.trainer import Trainer

from conftest import SMALL_BENCHMARK

pytestmark = pytest.mark.slow

SMALL = {"data.batch_size": 32, "eval.batch_size": 128, "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3}


@pytest.fixture(scope="module")
def source_root(synthetic_root):
    generate_synthetic(synthetic_root, "synthetic_source", seed=0, **SMALL_BENCHMARK)
    return synthetic_root


def test_pretrained_lwtgpf_beats_the_untrained_network(source_root, tmp_path):
    source = load_config("synthetic_source", {**SMALL, "data.root": str(source_root), "data.iters_per_epoch": 40,
                                              "train.epochs": 4, "optim.milestones": []})
    Trainer(source, run_dir=tmp_path / "pretrain").fit()

    target = {**SMALL, "data.root": str(source_root), "data.iters_per_epoch": 25, "train.epochs": 3,
              "train.eval_every": 0}
    untrained = Trainer(load_config("synthetic", target)).evaluate()
    weights = tmp_path / "pretrain" / "checkpoints" / "last.pt"
    trainer = Trainer(load_config("synthetic", {**target, "model.pretrained": str(weights)}), run_dir=tmp_path / "lwtgpf")
    metrics = trainer.fit()

    assert trainer.history[-1]["num_clusters"] > 0  # it trained on pseudo labels, not on nothing
    assert metrics["mAP"] > 100 * untrained["mAP"] + 10, (metrics, untrained)
