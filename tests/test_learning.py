"""End to end on the CPU: the recipe of `lwtgpf demo` at test size really learns.

Supervised pretraining (`classifier` method) on labelled people of `synthetic_source`, then LWTGPF on the
unlabelled `synthetic` benchmark from those weights. The final mAP must rise clearly above its start
(the pretrained network before any unsupervised step), which is itself above the randomly initialised
network's (chance: random features group crops by camera). Crops are read at 64x32 to keep the test
near half a minute; the preset's 128x64 is what bench/bench_methods.py measures.
"""
from __future__ import annotations

import pytest

from lwtgpf.config import load_config
from lwtgpf.data.synthetic import generate_synthetic
from lwtgpf.engine.trainer import Trainer

from conftest import SMALL_BENCHMARK

pytestmark = pytest.mark.slow

SMALL = {"data.height": 64, "data.width": 32, "data.pad": 2, "data.batch_size": 32, "eval.batch_size": 128,
         "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3}


@pytest.fixture(scope="module")
def source_root(synthetic_root):
    generate_synthetic(synthetic_root, "synthetic_source", seed=0, **SMALL_BENCHMARK)
    return synthetic_root


def test_lwtgpf_rises_above_its_pretrained_start(source_root, tmp_path):
    source = load_config("synthetic_source", {**SMALL, "data.root": str(source_root), "data.iters_per_epoch": 40,
                                              "train.epochs": 4, "optim.milestones": []})
    Trainer(source, run_dir=tmp_path / "pretrain").fit()

    target = {**SMALL, "data.root": str(source_root), "data.iters_per_epoch": 25, "train.epochs": 3,
              "train.eval_every": 0}
    untrained = Trainer(load_config("synthetic", target)).evaluate()
    weights = tmp_path / "pretrain" / "checkpoints" / "last.pt"
    trainer = Trainer(load_config("synthetic", {**target, "model.pretrained": str(weights)}), run_dir=tmp_path / "lwtgpf")
    start = trainer.evaluate()
    metrics = trainer.fit()

    assert trainer.history[-1]["num_clusters"] > 0  # it trained on pseudo labels, not on nothing
    assert start["mAP"] > untrained["mAP"]  # the pretraining transfers to people it never saw
    assert metrics["mAP"] > 100 * start["mAP"] + 5, (metrics, start, untrained)  # and LWTGPF improves on it
