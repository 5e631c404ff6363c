"""One epoch of LWTGPF, run by tests/test_distributed.py under torchrun (several gloo processes) and as
a plain single process; each rank saves its pseudo labels, memory, step losses and weights."""
import sys
from pathlib import Path

import torch

from lwtgpf.config import load_config
from lwtgpf.engine.distributed import current_info
from lwtgpf.engine.trainer import Trainer

root, out = sys.argv[1], Path(sys.argv[2])
# SGD, not the preset's AdamW: an SGD step is linear in the gradient, so two ranks' all-reduced gradient
# and one process's full-batch gradient (equal up to float summation order) give weights equal to ~1e-7.
# Adam divides by sqrt(v): a gradient entry near zero whose sign differs by rounding moves its weight by
# +-lr either way, a difference of 2 * lr that says nothing about DDP.
cfg = load_config("synthetic", {
    "data.root": root, "data.height": 64, "data.width": 32, "data.pad": 2, "data.batch_size": 16,
    "data.iters_per_epoch": 4, "train.epochs": 1, "optim.name": "sgd",
    "eval.batch_size": 64, "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3,
})
trainer = Trainer(cfg)
trainer.extract_train_features()
trainer.cluster()
trainer.build_memory()
trainer.train_epoch()
torch.save(
    {
        "labels": torch.as_tensor(trainer.pseudo.labels),
        "memory": trainer.memory.features.cpu(),
        "step_losses": torch.tensor(trainer.step_losses),
        "model": {k: v.cpu() for k, v in trainer.model.state_dict().items()},
    },
    out / f"rank{current_info().rank}.pt",
)
