"""The run-folder contract (lwtgpf.run_folder): layout, one writer, absolute paths, resume rules."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from lwtgpf.config import load_config
from lwtgpf.data import build_dataset
from lwtgpf.engine.trainer import Trainer
from lwtgpf.run_folder import RunFolder, RunFolderError, config_for_checkpoint, dataset_fingerprints


def test_config_is_stored_with_absolute_paths_and_reads_back_from_anywhere(tmp_path, monkeypatch, synthetic_root):
    monkeypatch.chdir(synthetic_root.parent)
    cfg = load_config("synthetic", {"data.root": synthetic_root.name, "model.pretrained": "pre/last.pt"})
    run = RunFolder(tmp_path / "run")
    run.create(cfg)
    saved = yaml.safe_load(run.config.read_text())
    assert saved["data"]["root"] == str(synthetic_root)
    assert saved["model"]["pretrained"] == str(synthetic_root.parent / "pre" / "last.pt")
    monkeypatch.chdir(tmp_path)  # another working folder: the same config
    assert run.read_config().data.root == str(synthetic_root)
    provenance = json.loads(run.provenance.read_text())
    assert {"code", "python", "packages", "command", "seed", "started", "datasets"} <= set(provenance)
    run.unlock()


def test_relative_paths_written_by_hand_are_relative_to_the_run_folder(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create(load_config("synthetic"))
    run.unlock()
    data = yaml.safe_load(run.config.read_text())
    data["data"]["root"] = "../benchmarks"
    run.config.write_text(yaml.safe_dump(data))
    assert run.read_config().data.root == str(tmp_path / "benchmarks")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    assert run.read_config(data_root=moved).data.root == str(moved)
    with pytest.raises(Exception, match="data_root .* is not a folder"):
        run.read_config(data_root=tmp_path / "nope")


def test_one_writer_per_folder_across_processes_and_a_dead_holder_never_blocks(tmp_path):
    run_path = tmp_path / "run"
    holder = textwrap.dedent(f"""
        import sys, time
        from lwtgpf.config import load_config
        from lwtgpf.run_folder import RunFolder
        run = RunFolder({str(run_path)!r})
        run.create(load_config("synthetic"))
        print("locked", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=rf"is in use by process {process.pid} on .* since"):
            RunFolder(run_path).lock()
    finally:
        process.kill()  # SIGKILL: the holder cannot clean up its .lock
        process.wait()
    assert (run_path / ".lock").exists()
    RunFolder(run_path).lock()  # the OS released the dead holder's flock: the stale file does not block


def test_a_folder_left_by_a_failed_start_is_reused_but_a_run_or_user_files_never_are(tmp_path, tiny_config):
    abandoned = RunFolder(tmp_path / "abandoned")
    abandoned.create(tiny_config())
    abandoned.log_event("crashed before the first checkpoint")
    abandoned.unlock()
    assert abandoned.is_abandoned()
    RunFolder(abandoned.path).create(tiny_config())  # reused: it held nothing worth keeping
    assert "crashed" not in abandoned.train_log.read_text()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(RunFolderError, match="is not empty; pick a new --out"):
        RunFolder(mine).create(tiny_config())
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_run_that_fails_before_its_first_checkpoint_blocks_no_rerun(tmp_path, tiny_config, monkeypatch):
    cfg = tiny_config()
    trainer = Trainer(cfg, run_dir=tmp_path / "run", verbose=False)
    monkeypatch.setattr(trainer, "train_epoch", lambda: (_ for _ in ()).throw(MemoryError("out of memory")))
    with pytest.raises(MemoryError):
        trainer.fit()
    trainer.close()  # what the process exit does
    monkeypatch.undo()
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    Trainer(cfg, run_dir=tmp_path / "run", verbose=False)  # the same command again works


def test_bad_input_fails_before_the_run_folder_exists(tmp_path, tiny_config, synthetic_root):
    with pytest.raises(Exception, match="dataset 'synthetic' not found"):
        Trainer(tiny_config(**{"data.root": str(tmp_path / "missing")}), run_dir=tmp_path / "a")
    with pytest.raises(Exception, match="pretrained file .*nothing.pt does not exist"):
        Trainer(tiny_config(**{"model.pretrained": str(tmp_path / "nothing.pt")}), run_dir=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_refuses_other_settings_by_name_and_takes_a_moved_dataset(tmp_path, finished_run, synthetic_root):
    trainer, run_dir = finished_run
    trainer.close()
    run = RunFolder(run_dir)
    cfg = run.read_config()
    other = load_config(None, {**cfg.flat(), "train.epochs": 9, "cluster.eps": 0.6})
    with pytest.raises(RunFolderError, match=r"differs from the run's in cluster.eps \(0.5 in the run, 0.6 now\), "
                                             r"train.epochs \(1 in the run, 9 now\)"):
        run.resume(other)
    moved = load_config(None, {**cfg.flat(), "data.root": str(synthetic_root), "data.workers": 0})
    assert run.resume(moved) == []  # same training list: no warning
    run.unlock()


def test_resume_warns_when_the_training_list_changed(tmp_path, finished_run):
    trainer, run_dir = finished_run
    trainer.close()
    run = RunFolder(run_dir)
    dataset = trainer.dataset
    smaller = type(dataset)(dataset.name, dataset.root, dataset.num_cameras, dataset.train[:-3], dataset.query,
                            dataset.gallery)
    warnings = run.resume(run.read_config(), smaller)
    run.unlock()
    assert len(warnings) == 1 and "training set of synthetic changed" in warnings[0]
    assert "training set of synthetic changed" in run.train_log.read_text()


def test_fingerprints_ignore_where_the_dataset_lives(synthetic_root, tmp_path):
    dataset = build_dataset("synthetic", synthetic_root)
    os.symlink(synthetic_root / "synthetic", tmp_path / "synthetic")
    assert dataset_fingerprints(dataset) == dataset_fingerprints(build_dataset("synthetic", tmp_path))


def test_a_checkpoint_keeps_its_model_settings_under_another_config(tiny_config):
    trained = tiny_config(**{"model.leff_stages": [True, True, False, False], "data.height": 96})
    cfg, notes = config_for_checkpoint(load_config("market1501"), trained)
    assert cfg.model.backbone == "lewinvit_tiny" and cfg.data.height == 96 and cfg.data.dataset == "market1501"
    assert any(n.startswith("model.backbone = 'lewinvit_tiny' from the checkpoint") for n in notes)
    assert cfg.model.leff_stages == (True, True, False, False)


def test_the_trainer_prints_one_line_per_epoch_and_keeps_train_log(tmp_path, tiny_config, capsys):
    Trainer(tiny_config(**{"train.eval_every": 2}), run_dir=tmp_path / "run").fit()
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if line.startswith("epoch ")]
    assert [line.split(" | ")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert "clusters" in epochs[0] and "outliers" in epochs[0] and "NMI" in epochs[0] and "train" in epochs[0]
    assert "mAP" in epochs[1] and "mAP" not in epochs[0]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "started:" in log and "epoch 2/2" in log and "finished: mAP" in log
    assert Path(tmp_path / "run" / "provenance.json").is_file()
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["ended"] is not None
