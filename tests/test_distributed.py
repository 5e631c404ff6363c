"""DDP on CPU: two gloo processes launched by torchrun against one process with the same global batch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_gloo_ranks_match_one_process(synthetic_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir(), multi.mkdir()
    for command, out in [
        ([sys.executable, str(WORKER)], single),
        ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER)], multi),
    ]:
        done = subprocess.run([*command, str(synthetic_root), str(out)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    one = torch.load(single / "rank0.pt", weights_only=True)
    rank0, rank1 = (torch.load(multi / f"rank{r}.pt", weights_only=True) for r in (0, 1))

    # identical pseudo labels and memories on both ranks ...
    assert torch.equal(rank0["labels"], rank1["labels"])
    assert torch.equal(rank0["memory"], rank1["memory"])
    assert torch.equal(rank0["step_losses"], rank1["step_losses"])
    # ... and the same run as one process with the global batch, within float tolerance
    assert torch.equal(rank0["labels"], one["labels"])
    assert len(one["step_losses"]) == 4
    assert torch.allclose(rank0["step_losses"], one["step_losses"], atol=1e-4)
    assert torch.allclose(rank0["memory"], one["memory"], atol=1e-4)
    for key, value in one["model"].items():
        assert torch.allclose(rank0["model"][key].float(), value.float(), atol=1e-4), key
