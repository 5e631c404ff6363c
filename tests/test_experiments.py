"""Experiments above runs (issue #13): provenance read back (`lwtgpf info`), sweeps (`lwtgpf sweep`: real
`lwtgpf train` / `lwtgpf notebook` subprocesses, two at a time, an injected failure, a resume that reruns
it through submitit's local executor) and comparison (`lwtgpf compare`, the compare_runs notebook, the
workbench's sweep tab), on the tiny settings of conftest."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lwtgpf.cli import main
from lwtgpf.experiments.compare import compare, inside_spread, spread_matrix, summary_table
from lwtgpf.experiments.info import describe, differences
from lwtgpf.experiments.manifest import SweepFolder
from lwtgpf.experiments.spec import SweepSpec, split_values

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
LWTGPF = Path(sys.executable).with_name("lwtgpf")
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # 2 cores shared: one thread per job
# two epochs (curves have two points), an evaluation after each, two steps per epoch
SETS = [f"{k}={v}" for k, v in {**TINY, "data.iters_per_epoch": 2, "train.epochs": 2, "train.eval_every": 1}.items()]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAILING_JOB = "cluster.eps=0.5__seed=2"


def lwtgpf(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [str(LWTGPF)] if LWTGPF.exists() else [sys.executable, "-m", "lwtgpf.cli"]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def sets(root: Path) -> list[str]:
    return [arg for item in [f"data.root={root}", *SETS] for arg in ("--set", item)]


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def manifest(sweep: Path) -> dict:
    return json.loads((sweep / "manifest.json").read_text())


# ---- a sweep end to end ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def failed_sweep(tmp_path_factory, synthetic_root):
    """2 eps values x 2 seeds, 2 jobs at once, one job broken on purpose (its run folder holds a user's file).

    Returns the sweep folder and a snapshot of that first attempt (the resume fixture changes the folder).
    """
    home = tmp_path_factory.mktemp("home")
    sweep = home / "sweeps" / "eps"
    request = ["sweep", "--out", "sweeps/eps", "--config", "synthetic", *sets(synthetic_root),
               "--grid", "cluster.eps=0.4,0.5", "--seeds", "1", "2"]
    printed = lwtgpf(*request, "--print-commands", "--threads", "1", cwd=home)
    assert printed.returncode == 0, printed.stderr
    broken = sweep / "runs" / FAILING_JOB
    broken.mkdir(parents=True)
    (broken / "notes.txt").write_text("a user's file: the job must refuse this folder, and never delete it")
    started = time.perf_counter()
    done = lwtgpf("sweep", "--out", "sweeps/eps", "--jobs", "2", "--threads", "1", cwd=home)
    return {"home": home, "sweep": sweep, "printed": printed, "done": done, "seconds": time.perf_counter() - started,
            "manifest": manifest(sweep)}


@pytest.fixture(scope="module")
def sweep(failed_sweep):
    """The same sweep after the broken folder was fixed, resumed with --rerun-failed through submitit."""
    home, sweep = failed_sweep["home"], failed_sweep["sweep"]
    (sweep / "runs" / FAILING_JOB / "notes.txt").unlink()
    again = lwtgpf("sweep", "--out", sweep, cwd=home)  # without --rerun-failed: nothing runs, failure kept
    assert again.returncode == 2 and "--rerun-failed" in again.stderr, again.stderr
    assert "0 to run now" in again.stdout
    resumed = lwtgpf("sweep", "--out", sweep, "--rerun-failed", "--executor", "submitit-local", "--threads", "1",
                     cwd=home)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return sweep


def test_print_commands_lists_one_line_per_job_and_runs_nothing(failed_sweep):
    printed = failed_sweep["printed"]
    lines = [line for line in printed.stdout.splitlines() if " --job " in line]
    assert len(lines) == 4 and all(line.startswith("OMP_NUM_THREADS=1 ") for line in lines)
    assert {line.split(" --job ")[1] for line in lines} == {
        "cluster.eps=0.4__seed=1", "cluster.eps=0.4__seed=2", "cluster.eps=0.5__seed=1", FAILING_JOB}
    assert (failed_sweep["sweep"] / "commands.txt").read_text().splitlines() == lines
    assert failed_sweep["manifest"]["jobs"][FAILING_JOB]["attempts"] == 1  # only the real run started it


def test_one_failure_never_stops_the_others(failed_sweep):
    done, jobs = failed_sweep["done"], failed_sweep["manifest"]["jobs"]
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("lwtgpf sweep: error: 1 job(s) did not finish")
    assert {job: entry["status"] for job, entry in jobs.items()} == {
        "cluster.eps=0.4__seed=1": "done", "cluster.eps=0.4__seed=2": "done", "cluster.eps=0.5__seed=1": "done",
        FAILING_JOB: "failed"}
    failed = jobs[FAILING_JOB]
    assert failed["error"].startswith("lwtgpf train: error: run folder") and "is not empty" in failed["error"]
    assert failed["returncode"] == 2 and failed["seconds"] > 0
    assert (failed_sweep["sweep"] / "runs" / FAILING_JOB / "notes.txt").exists()  # the user's file was kept
    log = (failed_sweep["sweep"] / "logs" / f"{FAILING_JOB}.log").read_text()
    assert "=== attempt 1" in log and "is not empty" in log
    # two at a time: some two jobs overlapped in time
    spans = [(time.mktime(time.strptime(e["started"], "%Y-%m-%d %H:%M:%S")),
              time.mktime(time.strptime(e["ended"], "%Y-%m-%d %H:%M:%S"))) for e in jobs.values()]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])


def test_the_resume_skips_done_jobs_and_reruns_the_failure_through_submitit(sweep):
    jobs = manifest(sweep)["jobs"]
    assert {entry["status"] for entry in jobs.values()} == {"done"}
    assert jobs[FAILING_JOB]["attempts"] == 2 and jobs[FAILING_JOB]["scheduler_job"]
    assert [e["attempts"] for j, e in jobs.items() if j != FAILING_JOB] == [1, 1, 1]  # never rerun
    assert any((sweep / "submitit").iterdir())  # submitit's own pickles and logs
    for job in jobs:
        assert (sweep / "runs" / job / "metrics.json").is_file()
    config = yaml.safe_load((sweep / "runs" / FAILING_JOB / "config.yaml").read_text())
    assert config["cluster"]["eps"] == 0.5 and config["train"]["seed"] == 2


def test_every_job_records_its_provenance(sweep):
    run = sweep / "runs" / "cluster.eps=0.4__seed=2"
    provenance = json.loads((run / "provenance.json").read_text())
    assert {"code", "python", "packages", "platform", "host", "cpu_count", "device", "torch_threads", "command",
            "cwd", "environment", "seed", "started", "ended", "phase_seconds", "datasets"} <= set(provenance)
    assert provenance["seed"] == 2 and provenance["device"] == "cpu" and provenance["torch_threads"] == 1
    assert {"torch", "timm", "numpy"} <= set(provenance["packages"])
    assert provenance["code"]["git_commit"] and provenance["code"]["git_dirty"] in (True, False)
    assert provenance["environment"]["OMP_NUM_THREADS"] == "1"
    assert provenance["environment"]["LWTGPF_SWEEP_JOB"] == "cluster.eps=0.4__seed=2"
    assert provenance["command"].startswith("lwtgpf train --config synthetic") and "--set cluster.eps=0.4" in provenance["command"]
    assert provenance["datasets"]["synthetic"]["train_size"] > 0 and provenance["ended"] is not None
    assert set(provenance["phase_seconds"]) >= {"extract", "cluster", "train", "evaluate"}


def test_info_prints_what_produced_a_run(sweep, capsys):
    assert main(["info", str(sweep / "runs" / "cluster.eps=0.4__seed=1")]) == 0
    out = capsys.readouterr().out
    for fragment in ("training run", "git ", "torch ", "timm ", "device cpu", "torch threads 1", "OMP_NUM_THREADS=1",
                     "seed        1", "dataset     synthetic: train ", "crops", "extract", "metrics     mAP",
                     "cluster.eps = 0.4"):
        assert fragment in out, fragment
    assert main(["info", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "grid        cluster.eps = 0.4, 0.5" in out and "4 jobs: 4 done" in out


def test_info_lists_two_runs_differences_key_by_key(sweep, tmp_path, capsys):
    a, b = sweep / "runs" / "cluster.eps=0.4__seed=1", sweep / "runs" / "cluster.eps=0.4__seed=2"
    assert main(["info", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    keys = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert keys == ["config.train.seed", "provenance.seed"]  # same eps, code, packages, machine, data
    assert "results: mAP" in out and "bookkeeping" in out
    other = tmp_path / "other"  # the same run, as if made with another torch on other data
    shutil.copytree(b, other)
    provenance = json.loads((other / "provenance.json").read_text())
    provenance["packages"]["torch"] = "9.9.9"
    provenance["datasets"]["synthetic"]["train"] = "0123456789abcdef"
    (other / "provenance.json").write_text(json.dumps(provenance))
    assert main(["info", str(b), str(other)]) == 0
    out = capsys.readouterr().out
    assert "provenance.packages.torch" in out and "A: 2.14" in out and "B: 9.9.9" in out
    assert "provenance.datasets.synthetic.train" in out and "config.train.seed" not in out
    assert main(["info", str(a), str(b), "--all"]) == 0
    assert "provenance.command" in capsys.readouterr().out  # --out differs: bookkeeping, listed on request
    assert main(["info", str(tmp_path)]) == 2
    one_line_error(capsys, "is not a run folder")


def test_compare_a_sweep_writes_its_table_and_curves(sweep, capsys):
    assert main(["compare", str(sweep)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert len(rows) == 2 and all("| 2 |" in row and "±" in row for row in rows)
    table = pd.read_csv(sweep / "comparison" / "comparison.csv")
    assert list(table["cluster.eps"]) == [0.4, 0.5] and list(table["n"]) == [2, 2]
    assert list(table["seeds"]) == ["1 2", "1 2"]
    assert {"mAP", "mAP_std", "mAP_vs_best", "nmi", "camera_split_rate", "minutes"} <= set(table)
    runs = pd.read_csv(sweep / "comparison" / "runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    metrics = json.loads((sweep / "runs" / "cluster.eps=0.5__seed=1" / "metrics.json").read_text())
    assert runs.loc[runs["job"] == "cluster.eps=0.5__seed=1", "mAP"].item() == metrics["mAP"]
    mean = runs.loc[runs["cluster.eps"] == 0.4, "mAP"].mean()
    assert table.loc[0, "mAP"] == pytest.approx(mean)
    curves = pd.read_csv(sweep / "comparison" / "curves.csv")
    assert sorted(curves.groupby("path")["epoch"].apply(list).tolist()) == [[1, 2]] * 4
    assert curves["mAP"].notna().all() and curves["pairwise_precision"].notna().all()
    for png in ("curves.png", "final_mAP.png"):
        data = (sweep / "comparison" / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_compare_groups_loose_runs_by_the_config_keys_that_differ(sweep, tmp_path):
    runs = [sweep / "runs" / job for job in ("cluster.eps=0.4__seed=1", "cluster.eps=0.5__seed=1", "cluster.eps=0.5__seed=2")]
    result = compare(runs)
    assert result.keys == ["cluster.eps"]  # not train.seed, not data.root
    assert list(result.table["n"]) == [1, 2]
    assert sorted(result.table["mAP_vs_best"]) == ["best", "spread unknown"]  # eps 0.4 has one seed
    by_seed = compare([sweep], by=["train.seed"])
    assert list(by_seed.table["train.seed"]) == [1, 2] and list(by_seed.table["n"]) == [2, 2]


def test_the_seed_spread_rule():
    assert inside_spread(10.0, 1.0, 11.5, 1.0) is True  # |1.5| <= 1 + 1
    assert inside_spread(10.0, 0.5, 12.0, 0.5) is False
    assert inside_spread(10.0, float("nan"), 12.0, 0.5) is None  # one seed: unknown, never "real"
    runs = pd.DataFrame({
        "group": ["a", "a", "b", "b", "c", "c", "d"], "seed": [1, 2, 1, 2, 1, 2, 1], "status": ["done"] * 7,
        "mAP": [20.0, 22.0, 19.0, 21.0, 10.0, 10.5, 30.0], "camera_split_rate": [0.5, 0.7, 0.2, 0.2, 0.9, 0.9, 0.1]})
    table = summary_table(runs, [], ["mAP", "camera_split_rate"])
    assert list(table["n"]) == [2, 2, 2, 1]
    assert table.loc[0, "mAP_std"] == pytest.approx(2 ** 0.5)
    # d has the best mean but one seed: every difference from it is of unknown spread
    assert list(table["mAP_vs_best"]) == ["spread unknown", "spread unknown", "spread unknown", "best"]
    assert list(table["camera_split_rate_vs_best"])[:3] == ["spread unknown"] * 3  # lower is better: d again
    two_seeds = summary_table(runs[runs["group"] != "d"], [], ["mAP"])
    assert list(two_seeds["mAP_vs_best"]) == ["best", "inside spread", "outside spread"]
    matrix = spread_matrix(two_seeds, "mAP")
    assert matrix.loc["a", "b"] == "+1.00 ≈" and matrix.loc["a", "c"] == "+10.75"


# ---- the scheduler-free and notebook routes --------------------------------------------------------
def test_a_notebook_sweep_runs_compare_runs_under_papermill(sweep, tmp_path):
    """Two `lwtgpf notebook compare_runs` jobs (two metrics) at once: each is a real papermill run with its
    provenance; the notebook itself compares the sweep above and writes its files."""
    done = lwtgpf("sweep", "--out", tmp_path / "nb", "--notebook", "compare_runs", "-p", "source", sweep,
                  "--grid", "metric=mAP,nmi", "--jobs", "2", "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for metric in ("mAP", "nmi"):
        run = tmp_path / "nb" / "runs" / f"metric={metric}"
        assert (run / "compare_runs.ipynb").is_file() and (run / f"final_{metric}.png").stat().st_size > 5_000
        provenance = json.loads((run / "provenance.json").read_text())
        assert provenance["kind"] == "notebook" and provenance["status"] == "done"
        assert provenance["parameters"]["metric"] == metric and provenance["parameters"]["source"] == str(sweep)
        assert provenance["notebook_fingerprint"] and provenance["code"]["git_commit"]
        table = pd.read_csv(run / "comparison.csv")
        assert list(table["n"]) == [2, 2]
        executed = (run / "compare_runs.ipynb").read_text()
        assert "inside the seed spread" in executed and "Traceback" not in executed
    a, b = (tmp_path / "nb" / "runs" / f"metric={m}" for m in ("mAP", "nmi"))
    keys = [k for k, _, _ in differences(a, b)]
    assert "parameters.metric" in keys and "provenance.parameters.metric" in keys
    assert "notebook    compare_runs" in describe(b) and "parameter   metric = 'nmi'" in describe(b)
    # a notebook job's training run is found inside its folder; one that stepped through its epochs
    # without fit() (no metrics.json) counts with its last evaluated log row
    shutil.copytree(sweep / "runs" / "cluster.eps=0.4__seed=1", a / "train")
    shutil.copytree(sweep / "runs" / "cluster.eps=0.5__seed=1", b / "train")
    (b / "train" / "metrics.json").unlink()
    result = compare([tmp_path / "nb"])
    assert result.keys == ["metric"] and list(result.table["n"]) == [1, 1]
    last = json.loads((b / "train" / "log.json").read_text())[-1]
    assert result.runs.loc[result.runs["job"] == "metric=nmi", "mAP"].item() == pytest.approx(100 * last["mAP"])


def test_the_results_table_command_at_tiny_size(sweep, synthetic_root, tmp_path, capsys):
    """bench/bench_methods.py: the README table as sweep + compare, two variants, one seed, two jobs,
    starting from a checkpoint of the sweep above (the pretraining step is printed by --dry-run)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_methods
    finally:
        sys.path.pop(0)
    overrides = [arg for item in [f"data.root={synthetic_root}", *SETS] for arg in ("--set", item)]
    assert bench_methods.main(["--out", str(tmp_path / "m"), "--dry-run", *overrides]) == 0
    dry = capsys.readouterr().out
    assert "$ lwtgpf sweep --out " in dry and "--config synthetic_source" in dry and "--variant LWTGPF+LeFF" in dry
    assert "$ lwtgpf evaluate --config synthetic" in dry and "$ lwtgpf compare " in dry
    assert not (tmp_path / "m").exists()
    weights = sweep / "runs" / "cluster.eps=0.4__seed=1" / "checkpoints" / "last.pt"
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        code = bench_methods.main(["--out", str(tmp_path / "m"), "--pretrained", str(weights), "--only", "LWTGPF",
                                   "O2CAP", "--seeds", "1", "--jobs", "2", *overrides])
    finally:
        if env["OMP_NUM_THREADS"] is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = env["OMP_NUM_THREADS"]
    assert code == 0
    table = pd.read_csv(tmp_path / "m" / "methods" / "comparison" / "comparison.csv")
    assert list(table["variant"]) == ["LWTGPF", "O2CAP"] and list(table["n"]) == [1, 1]
    configs = [yaml.safe_load(p.read_text()) for p in sorted((tmp_path / "m" / "methods" / "runs").glob("*/config.yaml"))]
    assert [c["method"] for c in configs] == ["lwtgpf", "o2cap"]
    assert [c["loss"]["reduction"] for c in configs] == ["batch_mean", "camera_sum"]  # O2CAP's own reduction
    story = (tmp_path / "m" / "methods.md").read_text()  # the README table: start, gain, ratio, label quality
    assert "| pretrained on synthetic_source, no training |" in story and "| LWTGPF | 1 |" in story
    assert "| O2CAP | 1 |" in story and "pairwise precision" in story
    assert all(c["model"]["pretrained"] == str(weights) for c in configs)


# ---- requests refused before any work ----------------------------------------------------------------
@pytest.mark.parametrize("extra, named", [
    (["--config", "synthetic", "--grid", "cluster.eps=0.5,1.5"], "combination cluster.eps=1.5: overrides: cluster.eps must be"),
    (["--config", "synthetic", "--grid", "cluster.epz=0.5"], "cluster.epz"),
    (["--config", "synthetic", "--grid", "train.seed=1,2"], "--seeds"),
    (["--config", "synthetic", "--grid", "method=lwtgpf", "--variant", "x", "method=o2cap"], "method is set both"),
    (["--config", "synthetic", "--grid", "cluster.eps="], "has no values"),
    (["--grid", "cluster.eps=0.4"], "--config PRESET"),
    (["--config", "no_such_preset"], "unknown preset"),
    (["--notebook", "compare_runs", "--seeds", "1", "2"], "no [config] parameter"),
    (["--notebook", "compare_runs", "--grid", "metrc=mAP"], "has no parameter 'metrc'"),
])
def test_bad_sweep_requests_fail_before_the_sweep_folder_exists(tmp_path, capsys, extra, named):
    assert main(["sweep", "--out", str(tmp_path / "s"), *extra]) == 2
    one_line_error(capsys, named)
    assert not (tmp_path / "s").exists()


def test_a_sweep_is_extended_with_more_seeds_but_never_changed(tmp_path, capsys):
    out = str(tmp_path / "s")
    base = ["sweep", "--out", out, "--config", "synthetic", "--set", "train.epochs=1", "--grid", "method=lwtgpf,o2cap"]
    assert main([*base, "--seeds", "1", "--print-commands"]) == 0
    assert main([*base, "--seeds", "1", "2", "--print-commands"]) == 0
    jobs = manifest(tmp_path / "s")["jobs"]
    assert list(jobs) == ["method=lwtgpf__seed=1", "method=o2cap__seed=1", "method=lwtgpf__seed=2", "method=o2cap__seed=2"]
    assert SweepFolder(out).read_spec().seeds == [1, 2]
    capsys.readouterr()
    assert main(["sweep", "--out", out, "--config", "synthetic", "--set", "train.epochs=2", "--grid",
                 "method=lwtgpf", "--seeds", "1"]) == 2
    one_line_error(capsys, "base settings differ")
    assert main(["sweep", "--out", out, "--config", "synthetic", "--set", "train.epochs=1", "--grid",
                 "cluster.eps=0.4"]) == 2
    one_line_error(capsys, "axes are method, seed")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    assert main(["sweep", "--out", str(tmp_path / "plain"), "--config", "synthetic"]) == 2
    one_line_error(capsys, "is not a sweep folder")
    assert main(["sweep", "--out", str(tmp_path / "nothing")]) == 2
    one_line_error(capsys, "not a sweep folder yet")
    assert main(["compare", str(tmp_path / "nothing")]) == 2
    one_line_error(capsys, "does not exist")


def test_grid_values_and_job_ids():
    assert split_values("0.4,0.5") == ["0.4", "0.5"]
    assert split_values("[true,false],[false,true]") == ["[true,false]", "[false,true]"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    spec = SweepSpec.create("train", "synthetic", base=["train.epochs=1"],
                            grid=["model.leff_stages=[true,true,true,true],[false,false,false,false]"],
                            variants=[("LWTGPF", ["method=lwtgpf"]), ("O2CAP", ["method=o2cap"])], seeds=[3])
    jobs = spec.jobs()
    assert [job.id for job in jobs] == [
        "LWTGPF__model.leff_stages=_true_true_true_true__seed=3", "LWTGPF__model.leff_stages=_false_false_false_false__seed=3",
        "O2CAP__model.leff_stages=_true_true_true_true__seed=3", "O2CAP__model.leff_stages=_false_false_false_false__seed=3"]
    assert jobs[0].settings == ("train.epochs=1", "method=lwtgpf", "model.leff_stages=[true,true,true,true]", "train.seed=3")
    assert jobs[0].values == {"variant": "LWTGPF", "model.leff_stages": "[true,true,true,true]", "seed": 3}
    spec.validate()
    command = spec.command(jobs[0], "/tmp/run")
    assert command[1:5] == ["-m", "lwtgpf.cli", "train", "--config"] and command[-2:] == ["--out", "/tmp/run"]


# ---- the workbench's sweep tab ------------------------------------------------------------------------
def test_the_workbench_opens_a_sweep_in_a_tab(sweep, tmp_path, monkeypatch):
    import widgets.workbench as workbench
    from widgets import SweepView

    from lwtgpf.run_folder import iter_runs
    from lwtgpf.workbench import RunState

    monkeypatch.setattr(workbench, "VIEWS", {})  # only the sweep tab: the other views have their own tests
    bench = workbench.Workbench(RunState.from_run_dir(iter_runs(sweep)[0].path))
    view = bench.open_sweep(sweep)
    assert isinstance(view, SweepView) and bench.tab.get_title(len(bench.tab.children) - 1) == "sweep"
    assert "cluster.eps=0.4" in view.table.value and "cluster.eps=0.5" in view.table.value
    before = bytes(view.bars.value)
    assert before.startswith(PNG_MAGIC) and bytes(view.image.value).startswith(PNG_MAGIC)
    view.metric.value = "nmi"
    assert bytes(view.bars.value) != before  # the control redraws
    assert bench.open_sweep(sweep) is view and len(bench.tab.children) == 1  # one sweep tab, reused
    saved = bench.save_figures(tmp_path)
    assert saved["sweep"].read_bytes().startswith(PNG_MAGIC)
    view.load(tmp_path / "missing")
    assert "does not exist" in view.status.value  # an error is shown, the widget stays
