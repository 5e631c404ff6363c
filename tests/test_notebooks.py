"""The workbench notebooks: committed clean, parameters checked before any kernel starts, and every one
executed headless by papermill (a real kernel, tiny parameters) into a run folder with its figures."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from lwtgpf import notebooks
from lwtgpf.cli import main
from lwtgpf.notebooks import NotebookError, available_notebooks, check_parameters, latest_run, notebook_parameters

from conftest import SMALL_BENCHMARK

NOTEBOOKS = ["attention_windows", "cluster_evolution", "clustering_explorer", "compare_runs", "evaluate_and_rank",
             "quickstart", "stepwise_training"]
# A few seconds per epoch on a 2-core CPU (the same shrink as conftest's tiny_config).
TINY = {"data.height": 64, "data.width": 32, "data.pad": 2, "data.batch_size": 16, "data.iters_per_epoch": 2, "eval.batch_size": 64,
        "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3}


def _cells(name: str) -> list[dict]:
    return json.loads((notebooks.NOTEBOOK_DIR / f"{name}.ipynb").read_text())["cells"]


def _outputs_text(executed: Path) -> str:
    """Everything the executed notebook printed or displayed as text."""
    parts = []
    for cell in json.loads(executed.read_text())["cells"]:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _png_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.glob("*.png")}


# ---- committed notebooks ---------------------------------------------------------------------------
def test_the_notebooks_are_committed_without_outputs():
    assert available_notebooks() == NOTEBOOKS
    for name in NOTEBOOKS:
        cells = _cells(name)
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code, name
        dirty = [i for i, c in enumerate(code) if c["outputs"] or c["execution_count"] is not None]
        assert dirty == [], f"{name}.ipynb: code cells {dirty} carry outputs; clear them before committing"
        tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, f"{name}.ipynb needs exactly one cell tagged 'parameters'"


def test_parameters_are_read_from_the_tagged_cell():
    params = notebook_parameters("stepwise_training")
    assert list(params)[:5] == ["preset", "dataset", "method", "epochs", "backbone"]
    assert params["epochs"].config_key == "train.epochs" and params["epochs"].default == 3
    assert params["backbone"].config_key == "model.backbone"
    assert params["data_root"].is_path and params["config_overrides"].is_overrides
    assert params["preset"].config_key == "" and params["preset"].help


def test_a_malformed_parameters_cell_is_refused(tmp_path):
    cells = _cells("quickstart")
    for cell in cells:
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = ["epochs = 3  # [train.epoch] a misspelt config key\n", "run_dir = ''\n"]
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(NotebookError, match="train.epoch"):
        notebook_parameters(bad)
    for cell in cells:
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = ["epochs = compute()\n", "run_dir = ''\n"]
    bad.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(NotebookError, match="'epochs' needs a literal default"):
        notebook_parameters(bad)


def test_latest_run_is_the_newest_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="quickstart"):
        latest_run(tmp_path)
    for age, name in [(200, "old"), (100, "new"), (300, "older")]:
        checkpoint = tmp_path / name / "train" / "checkpoints" / "last.pt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"")
        os.utime(checkpoint, (time.time() - age, time.time() - age))
    assert latest_run(tmp_path) == tmp_path / "new" / "train"


def test_values_are_checked_and_coerced():
    checked = check_parameters("clustering_explorer", {"eps": 0.6, "k1": 12, "eps_sweep": [0.3, 0.6]})
    assert checked == {"eps": 0.6, "k1": 12, "eps_sweep": [0.3, 0.6]}
    with pytest.raises(NotebookError, match=r"parameter 'eps': .*cluster.eps must be > 0 and < 1, got 1.0"):
        check_parameters("clustering_explorer", {"eps": 1})  # an int where a float is due: widened, then ranged
    with pytest.raises(NotebookError, match=r"cluster.k2 \(12\) must be <= cluster.k1 \(10\)"):
        check_parameters("clustering_explorer", {"k1": 10, "k2": 12})  # a rule between two parameters


# ---- `lwtgpf notebook` refuses bad parameters before any kernel starts -------------------------------
@pytest.mark.parametrize("argv, named", [
    (["quickstart", "-p", "epoch", "2"], "'epoch'"),  # unknown name; the message lists the real ones
    (["quickstart", "-p", "epochs", "two"], "'epochs'"),  # config-backed: the config system's type check
    (["quickstart", "-p", "generate_overrides", "24"], "'generate_overrides'"),  # notebook-only: default's type
    (["clustering_explorer", "-p", "eps_sweep", "0.5"], "'eps_sweep'"),
    (["stepwise_training", "-p", "preset", "no_such_preset"], "'preset'"),
    (["stepwise_training", "-p", "method", "no_such_method"], "'method'"),  # registries checked up front
    (["stepwise_training", "-p", "backbone", "resnet51"], "'backbone'"),
    (["stepwise_training", "-p", "config_overrides", "{train.epoch: 1}"], "train.epoch"),
    (["quickstart", "-p", "run_dir", "elsewhere"], "--out"),
    (["no_such_notebook"], "quickstart"),  # unknown notebook: the message lists the available ones
])
def test_bad_parameters_fail_before_the_kernel(tmp_path, monkeypatch, capsys, argv, named):
    def no_kernel(*args, **kwargs):
        raise AssertionError(f"papermill started despite bad parameters: {args}")

    monkeypatch.setattr(notebooks.subprocess, "run", no_kernel)
    out = tmp_path / "run"
    assert main(["notebook", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert named in err and "error" in err
    assert not out.exists()


def test_unknown_parameter_message_lists_the_parameters(capsys):
    assert main(["notebook", "quickstart", "-p", "epoch", "2"]) == 2
    err = capsys.readouterr().err
    assert "has no parameter 'epoch'" in err and "epochs" in err and "run_dir" in err


def test_a_used_run_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(notebooks.subprocess, "run", lambda *a, **k: pytest.fail("papermill started"))
    (tmp_path / "old.txt").write_text("a previous run")
    assert main(["notebook", "quickstart", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_list_prints_the_parameters(capsys):
    assert main(["notebook", "stepwise_training", "--list"]) == 0
    out = capsys.readouterr().out
    assert "epochs = 3 [train.epochs]" in out and "method = 'lwtgpf' [method]" in out


# ---- headless runs through papermill ------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """One OpenMP thread in the kernels (the 2-core CI machine is shared)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.setenv("MKL_NUM_THREADS", "1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def quickstart_run(kernel_env, tmp_path_factory):
    """`lwtgpf notebook quickstart` end to end: the benchmark is generated (small) into an empty folder."""
    base = tmp_path_factory.mktemp("quickstart")
    run = base / "run"
    argv = [
        "notebook", "quickstart", "--out", str(run),
        "-p", "data_root", str(base / "benchmarks"),
        "-p", "generate_overrides", json.dumps(SMALL_BENCHMARK),
        "-p", "epochs", "2", "-p", "umap_epochs", "20", "-p", "pretrain_epochs", "1", "-p", "pretrain_iters", "3",
        "-p", "config_overrides", json.dumps(TINY),
    ]
    assert main(argv) == 0
    return run


@pytest.mark.slow
def test_quickstart_generates_trains_and_saves_figures(quickstart_run):
    run = quickstart_run
    for name in ("synthetic", "synthetic_source"):  # generated because missing
        assert (run.parent / "benchmarks" / name / "meta.json").exists()
    executed = run / "quickstart.ipynb"
    text = _outputs_text(executed)
    assert "random initialisation: mAP" in text and "trained (2 epochs): mAP" in text
    assert (run / "pretrain" / "checkpoints" / "last.pt").exists()  # stage 1 wrote the weights stage 2 loaded
    assert "(layout lwtgpf): loaded" in text
    assert yaml.safe_load((run / "parameters.yaml").read_text())["epochs"] == 2
    provenance = json.loads((run / "provenance.json").read_text())  # the notebook run's own provenance
    assert provenance["notebook"] == "quickstart" and provenance["parameters"]["epochs"] == 2
    assert provenance["status"] == "done" and provenance["code"]["git_commit"] and provenance["seconds"] > 0
    trained = json.loads((run / "train" / "provenance.json").read_text())  # the Trainer's, inside the kernel
    assert trained["environment"]["LWTGPF_NOTEBOOK_RUN"] == str(run.resolve()) and trained["seed"] == 1
    train = run / "train"
    assert (train / "checkpoints" / "last.pt").exists()
    assert yaml.safe_load((train / "config.yaml").read_text())["train"]["epochs"] == 2  # parameter reached config
    figures = _png_files(run / "figures")
    assert len(figures) >= 5 and min(figures.values()) > 5_000, figures  # one static figure per widget


@pytest.mark.slow
def test_stepwise_training_runs_the_chosen_method(kernel_env, synthetic_root, tmp_path):
    run = tmp_path / "run"
    argv = [
        "notebook", "stepwise_training", "--out", str(run),
        "-p", "data_root", str(synthetic_root), "-p", "method", "o2cap", "-p", "epochs", "2",
        "-p", "umap_epochs", "20",
        "-p", "config_overrides", json.dumps(TINY),
    ]
    assert main(argv) == 0
    config = yaml.safe_load((run / "train" / "config.yaml").read_text())
    assert config["method"] == "o2cap" and config["train"]["epochs"] == 2
    log = json.loads((run / "train" / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2]
    assert "memory (F, proxies, D): (1," in _outputs_text(run / "stepwise_training.ipynb")  # o2cap: global only
    figures = _png_files(run / "figures")
    assert len(figures) >= 5 and min(figures.values()) > 5_000, figures


@pytest.mark.slow
@pytest.mark.parametrize("name, parameters, figure", [
    ("clustering_explorer", ["-p", "k1", "10", "-p", "k2", "3", "-p", "min_samples", "3"], "cluster_explorer.png"),
    ("attention_windows", ["-p", "crop", "3", "-p", "stage", "2", "-p", "block", "1", "-p", "head", "1"],
     "attention_windows.png"),
    ("evaluate_and_rank", ["-p", "topk", "5", "-p", "query", "2"], "rank_list.png"),
    ("cluster_evolution", ["-p", "identities", "2", "-p", "umap_epochs", "20"], "lineage.png"),
])
def test_run_folder_notebooks(quickstart_run, tmp_path, name, parameters, figure):
    run = tmp_path / name
    argv = ["notebook", name, "--out", str(run), "-p", "source_run", str(quickstart_run / "train"), *parameters]
    assert main(argv) == 0
    assert (run / f"{name}.ipynb").exists()
    assert (run / "figures" / figure).stat().st_size > 5_000
    if name == "clustering_explorer":
        sweep = (run / "eps_sweep.csv").read_text().splitlines()
        assert sweep[0].startswith("eps,num_clusters") and len(sweep) == 5  # header + 4 radii
    if name == "evaluate_and_rank":
        import pandas as pd

        ranked = pd.read_csv(run / "ranked_lists.csv")
        assert set(ranked["rank"]) == {1, 2, 3, 4, 5}
        assert (ranked["match"] == (ranked["query_pid"] == ranked["gallery_pid"])).all()
        assert "mAP" in _outputs_text(run / f"{name}.ipynb")
    if name == "cluster_evolution":  # lineage, camera pairs and two identities' trajectories, each shown too
        text = _outputs_text(run / f"{name}.ipynb")
        assert "looking at 1 -> 2" in text and text.count("identity ") >= 2
        assert len(list((run / "figures").glob("trajectory_id*.png"))) == 2
        assert (run / "camera_pairs.csv").read_text().startswith("epoch,cross-camera recall")
        for view in ("lineage", "trajectory", "camera_pairs", "proxy_umap"):  # the Workbench's twins
            assert (run / "figures" / f"{view}.png").stat().st_size > 5_000, view
