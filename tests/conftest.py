"""Shared fixtures: a small synthetic benchmark on disk (generated once per test session) and a
config that trains the tiny LewinViT on it in seconds."""
from __future__ import annotations

import pytest

from lwtgpf.config import load_config
from lwtgpf.data.synthetic import generate_synthetic

# 24 train / 16 test identities in 4 cameras: real files in the Market layout, a few hundred crops.
SMALL_BENCHMARK = dict(num_train_ids=24, num_test_ids=16, num_cameras=4, cameras_per_id=(2, 4), num_distractors=8)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    generate_synthetic(root, "synthetic", seed=0, **SMALL_BENCHMARK)
    return root


# The synthetic preset shrunk to a few seconds per epoch on a 2-core CPU (crops read at their stored
# 64x32, a quarter of the preset's 128x64 input).
TINY = {
    "data.height": 64, "data.width": 32, "data.pad": 2, "data.batch_size": 16, "data.iters_per_epoch": 4, "train.eval_every": 0, "eval.batch_size": 64,
    "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3,
}


@pytest.fixture
def tiny_config(synthetic_root):
    """load_config("synthetic") with TINY, two epochs, the session benchmark, and the test's overrides."""

    def make(**overrides):
        return load_config("synthetic", {**TINY, "data.root": str(synthetic_root), "train.epochs": 2, **overrides})

    return make


@pytest.fixture(scope="module")
def finished_run(synthetic_root, tmp_path_factory):
    """A one-epoch run written by a real Trainer, and that trainer (one per test module)."""
    from lwtgpf.engine.trainer import Trainer

    cfg = load_config("synthetic", {**TINY, "data.root": str(synthetic_root), "train.epochs": 1})
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    trainer = Trainer(cfg, run_dir=run_dir)
    trainer.step()
    return trainer, run_dir
