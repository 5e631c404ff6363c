"""The `lwtgpf` verbs, run as a user runs them (in-process through `main`, real files on disk)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from lwtgpf.cli import main


def _tiny(synthetic_root):
    return ["--set", f"data.root={synthetic_root}", "--set", "eval.batch_size=64",
            "--set", "cluster.k1=10", "--set", "cluster.k2=3", "--set", "cluster.min_samples=3"]


def test_synth_and_stats(tmp_path, capsys):
    assert main(["stats", "synthetic", "--root", str(tmp_path)]) == 2
    assert "lwtgpf synth --preset synthetic" in capsys.readouterr().err
    assert main(["synth", "--preset", "nope", "--root", str(tmp_path)]) == 2  # one line naming the choices
    assert "unknown synthetic preset 'nope'; available: synthetic," in capsys.readouterr().err
    assert main(["synth", "--root", str(tmp_path), "--seed", "3", "--figure", str(tmp_path / "overview.png")]) == 0
    assert (tmp_path / "overview.png").stat().st_size > 10_000
    assert main(["stats", "synthetic", "--root", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "query" in table and "gallery" in table
    assert main(["synth", "--root", str(tmp_path)]) == 2  # never overwrites without --overwrite
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("override, key", [("train.epoch=3", "train.epoch"), ("train.epochs=x", "train.epochs")])
def test_config_errors_name_the_key_and_exit_2(tmp_path, capsys, override, key):
    assert main(["train", "--config", "synthetic", "--out", str(tmp_path / "run"), "--set", override]) == 2
    assert key in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_evaluate_writes_ranked_lists(synthetic_root, tmp_path, capsys):
    csv_path = tmp_path / "ranked.csv"
    argv = ["evaluate", "--config", "synthetic", *_tiny(synthetic_root), "--ranked-csv", str(csv_path), "--topk", "5"]
    assert main(argv) == 0
    assert "mAP" in capsys.readouterr().out
    ranked = pd.read_csv(csv_path)
    assert set(ranked["rank"]) == {1, 2, 3, 4, 5}
    assert (ranked["match"] == (ranked["query_pid"] == ranked["gallery_pid"])).all()
    # the protocol removed same-person same-camera crops from every list
    same = (ranked["query_pid"] == ranked["gallery_pid"]) & (ranked["query_camid"] == ranked["gallery_camid"])
    assert not same.any()


def test_extract_then_cluster(synthetic_root, tmp_path, capsys):
    feats = tmp_path / "train.pt"
    assert main(["extract", "--config", "synthetic", *_tiny(synthetic_root), "--out", str(feats)]) == 0
    saved = torch.load(feats, weights_only=True)
    assert saved["features"].shape[:2] == (len(saved["paths"]), 6)
    capsys.readouterr()
    labels_csv = tmp_path / "labels.csv"
    assert main(["cluster", "--config", "synthetic", *_tiny(synthetic_root), "--features", str(feats),
                 "--out", str(labels_csv)]) == 0
    row = json.loads(capsys.readouterr().out.split("wrote")[0])
    assert {"num_clusters", "nmi", "camera_split_rate"} <= set(row)
    table = pd.read_csv(labels_csv)
    assert len(table) == len(saved["paths"]) and (table["label"].max() + 1) == row["num_clusters"]


def test_evaluate_rejects_a_file_that_is_not_a_checkpoint(synthetic_root, tmp_path, capsys):
    bogus = tmp_path / "weights.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "--config", "synthetic", *_tiny(synthetic_root), "--checkpoint", str(bogus)]) == 2
    assert "weights.pt" in capsys.readouterr().err
