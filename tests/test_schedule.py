"""The per-epoch warm-up multi-step schedule and the SGD optimizer of SPEC section 6."""
import pytest
import torch

from lwtgpf.config import OptimConfig, load_config
from lwtgpf.engine.schedule import build_optimizer, build_scheduler


def _lrs_per_epoch(cfg: OptimConfig, epochs: int):
    """The lr each epoch trains with, stepping the scheduler at the end of every epoch."""
    model = torch.nn.Linear(3, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_reference_recipe_lr_at_key_epochs():
    cfg = load_config().optim
    lrs = _lrs_per_epoch(cfg, 50)
    base = 3.5e-4
    # warm-up: 1% at epoch 0, linear to epoch 10 (public WarmupMultiStepLR: f = wf * (1 - e/10) + e/10)
    assert lrs[0] == pytest.approx(0.01 * base)
    assert lrs[1] == pytest.approx((0.01 * 0.9 + 0.1) * base)
    assert lrs[5] == pytest.approx(0.505 * base)
    assert lrs[9] == pytest.approx(0.901 * base)
    assert lrs[10] == pytest.approx(base) and lrs[19] == pytest.approx(base)
    assert lrs[20] == pytest.approx(0.1 * base) and lrs[39] == pytest.approx(0.1 * base)
    assert lrs[40] == pytest.approx(0.01 * base) and lrs[49] == pytest.approx(0.01 * base)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # strictly rising during warm-up


def test_no_warmup_and_custom_milestones():
    cfg = OptimConfig(lr=1.0, warmup_epochs=0, milestones=(2, 3), gamma=0.5)
    assert _lrs_per_epoch(cfg, 5) == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.25])


def test_scheduler_state_dict_resumes_exactly():
    cfg = load_config().optim
    model = torch.nn.Linear(3, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    for _ in range(13):
        optimizer.step()
        scheduler.step()
    saved_sched, saved_opt = scheduler.state_dict(), optimizer.state_dict()
    resumed_opt = build_optimizer(torch.nn.Linear(3, 2), cfg)
    resumed = build_scheduler(resumed_opt, cfg)
    resumed_opt.load_state_dict(saved_opt)
    resumed.load_state_dict(saved_sched)
    for _ in range(30):
        assert resumed_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
        for opt, sched in ((optimizer, scheduler), (resumed_opt, resumed)):
            opt.step()
            sched.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * cfg.lr)


def test_optimizer_is_sgd_with_momentum_and_decay_on_trainable_params_only():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    optimizer = build_optimizer(model, OptimConfig())
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.SGD)
    assert group["momentum"] == 0.9 and group["weight_decay"] == 5e-4 and group["lr"] == 3.5e-4
    assert len(group["params"]) == 5 and all(p is not model[2].weight for p in group["params"])


def test_bad_schedule_values_are_named():
    optimizer = build_optimizer(torch.nn.Linear(2, 2), OptimConfig())
    with pytest.raises(ValueError, match="milestones"):
        build_scheduler(optimizer, OptimConfig(milestones=(40, 20)))
    with pytest.raises(ValueError, match="warmup_factor"):
        build_scheduler(optimizer, OptimConfig(warmup_factor=0.0))
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(frozen, OptimConfig())
