"""A training run killed with SIGKILL in the middle of an epoch and resumed ends exactly like an
uninterrupted run: same epochs (none skipped or repeated), same weights, same metrics."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from lwtgpf.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def _train_command(synthetic_root, out, *extra):
    overrides = [
        f"data.root={synthetic_root}", "data.height=64", "data.width=32", "data.pad=2", "data.batch_size=16", "data.iters_per_epoch=6", "train.epochs=3",
        "train.eval_every=0", "eval.batch_size=64", "cluster.k1=10", "cluster.k2=3", "cluster.min_samples=3",
    ]
    if "--resume" in extra:  # the run's own config: nothing to repeat
        return [sys.executable, "-m", "lwtgpf.cli", "train", "--out", str(out), *extra]
    command = [sys.executable, "-m", "lwtgpf.cli", "train", "--config", "synthetic", "--out", str(out), *extra]
    return command + [arg for o in overrides for arg in ("--set", o)]


def _wait_for(predicate, process, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training exited early with code {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the training run")
        time.sleep(0.05)


def test_resume_after_sigkill_matches_an_uninterrupted_run(synthetic_root, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_train_command(synthetic_root, reference), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(_train_command(synthetic_root, killed), env=env, stderr=stderr,
                                   stdout=subprocess.DEVNULL)
        # kill once epoch 2 has taken at least one training step (its progress bar shows >= 1/6)
        in_epoch_two = re.compile(r"epoch 2 train:.*\| [1-5]/6")
        _wait_for(lambda: in_epoch_two.search(stderr_path.read_text()) is not None, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(_train_command(synthetic_root, killed, "--resume"), env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    log = json.loads((killed / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2, 3]
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    final, expected = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (killed, reference))
    assert final["epoch"] == expected["epoch"] == 3
    for key, value in expected["model"].items():
        assert torch.allclose(final["model"][key].float(), value.float(), atol=1e-6), key
    reference_log = json.loads((reference / "log.json").read_text())
    assert [row["loss"] for row in log] == pytest.approx([row["loss"] for row in reference_log], abs=1e-6)
