"""The documented journeys, run as a user runs them: `lwtgpf` commands and notebooks as subprocesses from
a working folder that is NOT the repository, on small generated data (issue: real-world runs).

Every failure a user can cause must end with exit code 2 and one line naming the file or key, no
traceback; `--debug` shows the traceback.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lwtgpf.data.synthetic import generate_synthetic
from lwtgpf.notebooks import NOTEBOOK_DIR
from conftest import SMALL_BENCHMARK, TINY

pytestmark = pytest.mark.slow
LWTGPF = Path(sys.executable).with_name("lwtgpf")  # the console script the README documents
TINY_SETS = [f"{key}={value}" for key, value in TINY.items()]
ENV = dict(os.environ, OMP_NUM_THREADS="1")  # two torch processes on 2 cores must not spin-wait


def lwtgpf(*args: str, cwd: Path, ok: bool = True, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    command = [str(LWTGPF)] if LWTGPF.exists() else [sys.executable, "-m", "lwtgpf.cli"]
    done = subprocess.run([*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=ENV,
                          timeout=timeout, **kwargs)
    if ok:
        assert done.returncode == 0, f"lwtgpf {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, one line on stderr starting `lwtgpf VERB: error:`, no traceback; returns the line."""
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stderr.splitlines() if line.strip() and "%|" not in line]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("lwtgpf ") and ": error: " in lines[0], done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory, synthetic_root):
    """A user's working folder, outside the repository, with the benchmarks under ./benchmarks."""
    home = tmp_path_factory.mktemp("home")
    (home / "benchmarks").mkdir()
    shutil.copytree(synthetic_root / "synthetic", home / "benchmarks" / "synthetic")
    generate_synthetic(home / "benchmarks", "synthetic_source", seed=0, **SMALL_BENCHMARK)
    return home


@pytest.fixture(scope="module")
def trained(home):
    """`lwtgpf train` from the user's folder, with the relative paths users type."""
    lwtgpf("train", "--config", "synthetic", "--out", "runs/exp", *sets("data.root=benchmarks", *TINY_SETS,
           "train.epochs=2", "train.eval_every=1"), cwd=home)
    return home / "runs" / "exp"


def test_train_prints_a_line_per_epoch_and_stores_absolute_paths(trained, home):
    config = yaml.safe_load((trained / "config.yaml").read_text())
    assert config["data"]["root"] == str(home / "benchmarks")
    log = (trained / "train.log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log and "mAP" in log
    provenance = json.loads((trained / "provenance.json").read_text())
    assert provenance["command"].startswith("lwtgpf train --config synthetic --out runs/exp")
    assert provenance["datasets"]["synthetic"]["train_size"] > 0


def test_evaluate_a_run_folder_from_another_folder(trained, home, tmp_path):
    done = lwtgpf("evaluate", "--checkpoint", trained, "--ranked-csv", "ranked.csv", "--topk", "5", cwd=tmp_path)
    assert "mAP" in done.stdout and (tmp_path / "ranked.csv").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert f"{metrics['mAP']:.1f}" in done.stdout  # the run's own config and weights: the same numbers


def test_a_cli_run_opens_in_a_notebook(trained, tmp_path):
    out = tmp_path / "nb"
    lwtgpf("notebook", "evaluate_and_rank", "-p", "source_run", trained, "--out", out, cwd=tmp_path)
    assert (out / "figures" / "rank_list.png").is_file() and (out / "ranked_lists.csv").is_file()


def test_a_notebook_run_opens_from_the_repository_root(home, tmp_path):
    out = tmp_path / "stepwise"
    overrides = json.dumps({k: v for k, v in TINY.items() if k != "train.eval_every"})
    lwtgpf("notebook", "stepwise_training", "-p", "data_root", home / "benchmarks", "-p", "epochs", "1",
           "-p", "config_overrides", overrides, "--out", out, cwd=tmp_path)
    script = ("from lwtgpf.workbench import RunState; import sys; s = RunState.from_run_dir(sys.argv[1]); "
              "print('mAP', round(s.ranking(5)['mAP'], 4), 'epoch', s.epoch)")
    done = subprocess.run([sys.executable, "-c", script, str(out / "train")], cwd=NOTEBOOK_DIR.parent,
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0 and "epoch 1" in done.stdout, done.stderr


def test_the_demo_runs_open_in_every_notebook_by_default(home, tmp_path):
    """`lwtgpf demo` then the explorer notebooks with their default source_run (the newest run under
    ../runs, seen from the notebooks' folder), as after `make demo` in JupyterLab."""
    project = tmp_path / "project"
    shutil.copytree(NOTEBOOK_DIR, project / "notebooks")
    tiny = sets("data.root=../benchmarks", *TINY_SETS, "train.epochs=1")
    pretrain = [a for item in ("data.root=../benchmarks", *TINY_SETS, "train.epochs=1")
                for a in ("--pretrain-set", item)]
    os.symlink(home / "benchmarks", tmp_path / "benchmarks")
    lwtgpf("demo", "--out", "runs/demo", *tiny, *pretrain, cwd=project)
    assert (project / "runs" / "demo" / "lwtgpf" / "checkpoints" / "last.pt").is_file()
    # the LWTGPF run's model.pretrained is the pretraining run's checkpoint; nothing below may need it
    shutil.rmtree(project / "runs" / "demo" / "pretrain")
    lwtgpf("evaluate", "--checkpoint", "runs/demo/lwtgpf", cwd=project)
    for name, figure in (("evaluate_and_rank", "rank_list.png"), ("attention_windows", "attention_windows.png"),
                         ("clustering_explorer", "cluster_explorer.png")):
        out = project / "runs" / f"nb-{name}"
        lwtgpf("notebook", project / "notebooks" / f"{name}.ipynb", "--out", out, cwd=project)
        assert (out / "figures" / figure).is_file(), name


def _kill_after_first_checkpoint(home: Path, run: str, root: str) -> Path:
    command = [str(LWTGPF), "train", "--config", "synthetic", "--out", run,
               *sets(f"data.root={root}", *TINY_SETS, "train.epochs=3")]
    process = subprocess.Popen(command, cwd=home, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = home / run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists()
    return home / run


def test_resume_after_the_dataset_moved(home):
    shutil.copytree(home / "benchmarks" / "synthetic", home / "old" / "synthetic")
    run = _kill_after_first_checkpoint(home, "runs/moved", "old")
    shutil.move(home / "old", home / "new")
    one_line_error(lwtgpf("train", "--out", run, "--resume", cwd=home, ok=False),
                   "dataset 'synthetic' not found", str(home / "old"))
    one_line_error(lwtgpf("train", "--out", run, "--resume", *sets("train.epochs=5"), cwd=home, ok=False),
                   "train.epochs (3 in the run, 5 now)")
    one_line_error(lwtgpf("train", "--out", run, "--resume", "--config", "synthetic", cwd=home, ok=False),
                   "--resume", "differs from the run's in")
    lwtgpf("train", "--out", run, "--resume", *sets("data.root=new"), cwd=home)  # the stale .lock does not block
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(home / "new")
    assert [row["epoch"] for row in json.loads((run / "log.json").read_text())] == [1, 2, 3]
    assert "resume changes data.root" in (run / "train.log").read_text()


def test_a_second_writer_is_refused_while_the_first_runs(home):
    command = [str(LWTGPF), "train", "--config", "synthetic", "--out", "runs/busy",
               *sets("data.root=benchmarks", *TINY_SETS, "train.epochs=50")]
    process = subprocess.Popen(command, cwd=home, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (home / "runs/busy/checkpoints/last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        one_line_error(lwtgpf("train", "--out", "runs/busy", "--resume", cwd=home, ok=False),
                       "is in use by process", str(process.pid))
    finally:
        process.kill()
        process.wait()


def test_direct_transfer_to_a_dataset_with_more_cameras(trained, tmp_path):
    generate_synthetic(tmp_path / "eight", "synthetic_occluded", seed=1, **{**SMALL_BENCHMARK, "num_cameras": 8})
    done = lwtgpf("evaluate", "--checkpoint", trained, "--config", "synthetic",
                  *sets("data.dataset=synthetic_occluded", f"data.root={tmp_path / 'eight'}"), cwd=tmp_path)
    assert "trained for 4 cameras, this dataset has 8" in done.stdout and "mAP" in done.stdout


def test_a_folder_copied_from_a_mac(home, tmp_path):
    mac = tmp_path / "mac"
    shutil.copytree(home / "benchmarks" / "synthetic", mac / "synthetic")
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        folder = mac / "synthetic" / split
        for crop in sorted(folder.iterdir())[:3]:
            (folder / f"._{crop.name}").write_bytes(b"\x00\x05\x16\x07AppleDouble resource fork")
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        (folder / "__MACOSX").mkdir()
    done = lwtgpf("stats", "synthetic", "--root", mac, cwd=tmp_path)
    assert "skipped hidden/system files" in done.stdout and "6 in bounding_box_train" in done.stdout
    lwtgpf("evaluate", "--config", "synthetic", *sets(f"data.root={mac}", *TINY_SETS), cwd=tmp_path)


# ---- every mistake: one line, exit 2, before any work ----------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (sets("cluster.eps=1.5"), ["cluster.eps must be > 0 and < 1, got 1.5"]),
    (sets("train.amp=bf32"), ["train.amp must be one of auto, off, bf16, fp16"]),
    (sets("data.batch_size=30"), ["data.batch_size (30) must be a multiple of data.num_instances (4)"]),
    (sets("cluster.k2=40"), ["cluster.k2 (40) must be <= cluster.k1 (20)"]),
    (sets("model.backbone=swin_s"), ["model.backbone 'swin_s' is not one of"]),
    (sets("data.mean=[0.5, 0.5"), ["data.mean=[0.5, 0.5", "not valid YAML"]),
    (["--config", "nothere.yaml"], ["config file nothere.yaml does not exist"]),
])
def test_a_wrong_config_value_fails_before_torch_and_leaves_no_folder(tmp_path, args, fragments):
    probe = ("import sys, runpy; sys.argv = ['lwtgpf', *sys.argv[1:]]\n"
             "from lwtgpf.cli import main\ncode = main(sys.argv[1:])\n"
             "print('torch imported' if 'torch' in sys.modules else 'torch not imported'); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe, "train", "--out", "run", *args], cwd=tmp_path,
                          capture_output=True, text=True, env=ENV, timeout=120)
    one_line_error(done, *fragments)
    assert "torch not imported" in done.stdout  # so it fails in a fraction of a second
    assert not (tmp_path / "run").exists()


def test_a_yaml_error_in_a_config_file_names_the_line(tmp_path):
    (tmp_path / "exp.yaml").write_text("train:\n  epochs: 3\n  eval_every: [1\n")
    one_line_error(lwtgpf("train", "--config", "exp.yaml", "--out", "run", cwd=tmp_path, ok=False),
                   "exp.yaml: not valid YAML at line")


def test_wrong_files_for_cluster_and_extract(trained, tmp_path):
    one_line_error(lwtgpf("cluster", "--features", trained / "checkpoints" / "last.pt", cwd=tmp_path, ok=False),
                   "last.pt: not a features file of `lwtgpf extract`", "--checkpoint")
    (tmp_path / "out").mkdir()
    one_line_error(lwtgpf("extract", "--checkpoint", trained, "--out", "out", cwd=tmp_path, ok=False),
                   "--out must be a .pt file, not a folder")
    one_line_error(lwtgpf("extract", "--checkpoint", trained, "--out", "missing/feats.pt", cwd=tmp_path, ok=False),
                   "the folder of --out does not exist")


def test_a_corrupted_checkpoint_is_detected_not_loaded(trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    data = bytearray((copy / "checkpoints" / "last.pt").read_bytes())
    data[len(data) // 2] ^= 0x40
    (copy / "checkpoints" / "last.pt").write_bytes(bytes(data))
    one_line_error(lwtgpf("evaluate", "--checkpoint", copy, cwd=tmp_path, ok=False),
                   "last.pt: corrupt checkpoint", "CRC-32")


def test_a_checkpoint_that_does_not_fit_its_config_names_the_keys(trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["model"]["leff_stages"] = [True, False, False, False]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    one_line_error(lwtgpf("evaluate", "--checkpoint", copy, cwd=tmp_path, ok=False),
                   "last.pt: the checkpoint does not fit", "missing: trunk.stages.0")


def test_image_errors_from_dataloader_workers_and_decompression_bombs(home, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(home / "benchmarks" / "synthetic", broken / "synthetic")
    bad = sorted((broken / "synthetic" / "query").glob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    done = lwtgpf("evaluate", "--config", "synthetic", *sets(f"data.root={broken}", "data.workers=2", *TINY_SETS),
                  cwd=tmp_path, ok=False)
    one_line_error(done, f"cannot read image {bad}")
    Image.fromarray(np.zeros((12_000, 16_000, 3), dtype=np.uint8)).save(bad, quality=10)  # 192 Mpx: over PIL's limit
    one_line_error(lwtgpf("evaluate", "--config", "synthetic", *sets(f"data.root={broken}", *TINY_SETS),
                          cwd=tmp_path, ok=False), f"cannot read image {bad}: far too large")


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(home):
    """A real write failure from the kernel: the resumed run may write files up to the size of its epoch-1
    checkpoint only (RLIMIT_FSIZE: EFBIG past it), so saving epoch 2 (a longer history) fails."""
    run = _kill_after_first_checkpoint(home, "runs/full", "benchmarks")
    checkpoint = run / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before), len(before)))

    done = lwtgpf("train", "--out", run, "--resume", cwd=home, ok=False, preexec_fn=small_files)
    one_line_error(done, f"cannot write {checkpoint}", "File too large")
    assert checkpoint.read_bytes() == before  # the previous checkpoint, intact
    assert not list(run.rglob("*.tmp"))  # no temporary file left behind
    assert [row["epoch"] for row in json.loads((run / "log.json").read_text())] == [1]  # never ahead of it
    lwtgpf("train", "--out", run, "--resume", cwd=home)  # with room again, the run completes
    assert [row["epoch"] for row in json.loads((run / "log.json").read_text())] == [1, 2, 3]


def test_debug_shows_the_traceback(tmp_path):
    done = lwtgpf("--debug", "train", "--out", "run", *sets("cluster.eps=2"), cwd=tmp_path, ok=False)
    assert done.returncode != 0 and "Traceback" in done.stderr and "ConfigError" in done.stderr
