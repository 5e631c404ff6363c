"""Checkpoints: weights_only round trip, atomic replace, clear errors, exact RNG restore."""
import io
import random

import numpy as np
import pytest
import torch

from lwtgpf.config import load_config
from lwtgpf.engine import checkpoint as ckpt
from lwtgpf.engine.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from lwtgpf.engine.schedule import build_optimizer, build_scheduler
from lwtgpf.memory import CameraProxyMemory


def _training_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    cfg = load_config(overrides={"optim.warmup_epochs": 2})
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    model(torch.randn(5, 4)).square().sum().backward()
    optimizer.step()
    scheduler.step()
    rows = torch.nn.functional.normalize(torch.randn(2, 3, 4), dim=-1)
    memory = CameraProxyMemory(rows, torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), 0.2)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "memory": memory.state_dict(),
        "epoch": 1,
        "iteration": 200,
        "rng": capture_rng_state(),
        "config": cfg.to_dict(),
    }
    return model, optimizer, scheduler, state


def test_round_trip_is_weights_only_loadable_and_restores_training_objects(tmp_path):
    model, optimizer, scheduler, state = _training_state()
    path = save_checkpoint(tmp_path / "run" / "last.pt", state)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # the plain torch call accepts it
    assert raw["epoch"] == 1 and raw["format"] == ckpt.FORMAT
    loaded = load_checkpoint(path)
    for key, value in state["model"].items():
        torch.testing.assert_close(loaded["model"][key], value)
    fresh_model, fresh_optimizer, fresh_scheduler, _ = _training_state()
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    fresh_scheduler.load_state_dict(loaded["scheduler"])
    assert fresh_scheduler.last_epoch == scheduler.last_epoch
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    memory = CameraProxyMemory.from_state_dict(loaded["memory"])
    torch.testing.assert_close(memory.features, state["memory"]["features"])
    assert loaded["config"] == state["config"]


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def crash_midway(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_values_weights_only_cannot_load_are_refused_before_writing(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    with pytest.raises(TypeError, match=r"state\['rng'\]\['keys'\] is a numpy.ndarray"):
        save_checkpoint(path, {"epoch": 2, "rng": {"keys": np.zeros(3)}})
    with pytest.raises(TypeError, match=r"state\['lr'\] is a numpy.float64"):
        save_checkpoint(path, {"lr": np.float64(0.1)})
    assert load_checkpoint(path)["epoch"] == 1


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):
        load_checkpoint(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    good = save_checkpoint(tmp_path / "good.pt", {"epoch": 3, "w": torch.ones(1000)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    bare_weights = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.ones(2)}, bare_weights)
    with pytest.raises(CheckpointError, match="weights.pt: not an lwtgpf checkpoint"):
        load_checkpoint(bare_weights)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": ckpt.FORMAT, "format_version": 1, "obj": ckpt.CheckpointError("x")}, unsafe)
    with pytest.raises(CheckpointError, match="unsafe.pt: holds objects that weights_only=True refuses"):
        load_checkpoint(unsafe)


def test_a_flipped_bit_is_detected_where_torch_load_would_load_it(tmp_path):
    good = save_checkpoint(tmp_path / "last.pt", {"epoch": 3, "w": torch.arange(4096, dtype=torch.float32)})
    data = bytearray(good.read_bytes())
    offset = data.find(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[4000:4016])
    assert offset > 0  # the tensor's bytes, stored uncompressed in the zip archive
    data[offset] ^= 0x01
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    torch.load(flipped, weights_only=True)  # torch alone loads the damaged tensor without a word
    with pytest.raises(CheckpointError, match=r"flipped.pt: corrupt checkpoint: member .* fails its CRC-32"):
        load_checkpoint(flipped)


def test_a_checkpoint_that_fails_verification_never_replaces_the_previous_one(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1})
    before = path.read_bytes()

    real_save = torch.save  # a write that "succeeds" but leaves a damaged archive behind
    monkeypatch.setattr(ckpt.torch, "save", lambda obj, handle: _truncated_save(real_save, obj, handle))
    with pytest.raises(CheckpointError, match=r"cannot write .*last.pt: the written file does not verify"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def _truncated_save(save, obj, handle):
    buffer = io.BytesIO()
    save(obj, buffer)
    handle.write(buffer.getvalue()[:-100])


def _draws():
    return (
        [random.random(), random.gauss(0, 1), random.randint(0, 10**9)],
        np.concatenate([np.random.rand(3), np.random.randn(3)]).tolist(),
        torch.rand(4).tolist() + torch.randn(2).tolist(),
    )


def test_restoring_rng_state_reproduces_the_same_draws(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leave a cached gaussian in python's and numpy's state
    np.random.randn()
    state = capture_rng_state()
    first = _draws()
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    assert _draws() != first  # the generators moved on
    restore_rng_state(load_checkpoint(path)["rng"])
    assert _draws() == first
