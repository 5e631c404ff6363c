"""Pretrained loading. PROOF 1: SOLIDER's own token maps (fixture). PROOF 2: timm Swin conversion.
PROOF 3: ResNet-50 / ViT-S round trips. Plus the loud failures."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from torch import nn

from lwtgpf.config import load_config
from lwtgpf.models import LWTGPF, LewinViT, LewinViTShape, ResNet50Reid, ViTSmallReid, build_model, load_pretrained
from lwtgpf.models.pretrained import PretrainedError, load_model_state, resize_vit_pos_embed, timm_to_unfold_order

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
ORACLE = FIXTURES / "solider_swin_oracle.pt"


@pytest.fixture(scope="module")
def oracle() -> dict:
    if not FIXTURES.is_dir():
        pytest.skip(f"SOLIDER oracle fixtures folder {FIXTURES} is absent (it lives beside the repo, ../shared)")
    return torch.load(ORACLE, map_location="cpu", weights_only=True)


def oracle_shape(config: dict, **overrides) -> LewinViTShape:
    shape = LewinViTShape(
        embed_dim=config["embed_dims"], depths=tuple(config["depths"]), num_heads=tuple(config["num_heads"]),
        window_size=config["window_size"], patch_size=config["patch_size"], mlp_ratio=config["mlp_ratio"],
    )
    return dataclasses.replace(shape, **overrides)


# ---------------------------------------------------------------------------------------------------
# PROOF 1: SOLIDER oracle


def test_solider_checkpoint_reproduces_every_stage_of_solider(oracle):
    model = LewinViT(oracle_shape(oracle["config"])).eval()
    report = load_pretrained(model, ORACLE, layout="auto")
    assert report.layout == "solider" and report.missing == [] and report.unexpected == []
    reasons = set(report.skipped.values())
    assert any("head" in r for r in reasons) and any("semantic" in r for r in reasons)
    assert any("output LayerNorm" in r for r in reasons) and any("relative_position_index" in r for r in reasons)

    outputs, images = oracle["outputs"], oracle["input"]
    with torch.no_grad():
        torch.testing.assert_close(model.embed(images).flatten(1, 2), outputs["patch_embed"], rtol=0, atol=1e-5)
        stage_outs = model.forward_intermediates(images)
        for i, out in enumerate(stage_outs):
            assert tuple(out.shape[1:3]) == tuple(outputs[f"stage{i}_out_hw"].tolist())
            torch.testing.assert_close(out.flatten(1, 2), outputs[f"stage{i}_out"], rtol=0, atol=1e-5)
            merged = model.stages[i].downsample(out) if model.stages[i].downsample is not None else out
            assert tuple(merged.shape[1:3]) == tuple(outputs[f"stage{i}_x_hw"].tolist())
            torch.testing.assert_close(merged.flatten(1, 2), outputs[f"stage{i}_x"], rtol=0, atol=1e-5)


def test_layernorm_eps_1e6_does_not_reproduce_solider(oracle):
    """Why LewinViTShape.norm_eps defaults to 1e-5 although SPEC 2 (LWTGPF's code) says 1e-6."""
    model = LewinViT(oracle_shape(oracle["config"], norm_eps=1e-6)).eval()
    load_pretrained(model, ORACLE)
    with torch.no_grad():
        out = model.forward_intermediates(oracle["input"])[0]
    assert (out.flatten(1, 2) - oracle["outputs"]["stage0_out"]).abs().max() > 1e-4


def test_lwtgpf_gets_the_checkpoint_last_stage_in_both_branches(oracle):
    model = LWTGPF(LewinViT(oracle_shape(oracle["config"]), num_cameras=2)).eval()
    report = load_pretrained(model, ORACLE)
    assert report.unexpected == []
    # never in a checkpoint: the camera table and the BN necks
    assert {k.split(".")[0] for k in report.missing} == {"trunk", "necks"}
    assert [k for k in report.missing if k.startswith("trunk")] == ["trunk.camera_embed"]
    b1, b2 = (dict(b.named_parameters()) for b in model.branches)
    assert all(torch.equal(b1[k], b2[k]) and b1[k].data_ptr() != b2[k].data_ptr() for k in b1)
    with torch.no_grad():
        model.trunk.camera_embed.zero_()  # SOLIDER ran without a camera embedding
        tokens = model.trunk(oracle["input"], torch.tensor([0, 1]))
        for branch in model.branches:
            torch.testing.assert_close(branch(tokens).flatten(1, 2), oracle["outputs"]["stage3_out"], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# PROOF 2: timm ImageNet Swin


TIMM_SMALL = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), num_classes=0)


def random_timm_swin(img_size, **kwargs) -> nn.Module:
    """A small timm Swin with variance-preserving random weights (attention far from uniform)."""
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=img_size,
                              **TIMM_SMALL, **kwargs).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0, p[0].numel() ** -0.5)
            elif "relative_position_bias_table" in name:
                p.normal_(0, 1)
            else:
                p.normal_(1 if name.endswith("weight") else 0, 0.3)
        for layer in model.layers:
            for block in layer.blocks:
                block.attn.relative_position_bias_table.normal_(0, 1)
    return model


def timm_stage_outputs(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """timm's per-stage outputs before the final norm, (B, H, W, C); timm merges at a stage's start."""
    x = model.patch_embed(images)
    outs = []
    for layer in model.layers:
        x = layer(x)
        outs.append(x)
    return outs


def converted(timm_model: nn.Module, tmp_path: Path, official: bool = False) -> LewinViT:
    state = timm_model.state_dict()
    if official:  # the original Microsoft .pth layout: {'model': ...}, merges at the END of stages
        state = {k.replace(f"layers.{i}.downsample", f"layers.{i - 1}.downsample"): v
                 for k, v in state.items() for i in [int(k.split(".")[1]) if k.startswith("layers.") else 0]}
        path = tmp_path / "swin_official.pth"
        torch.save({"model": state}, path)
    else:  # timm's hub format
        path = tmp_path / "model.safetensors"
        safetensors.torch.save_file(state, str(path))
    model = LewinViT(LewinViTShape(16, (2, 2, 2, 2), (1, 2, 4, 8))).eval()
    report = load_pretrained(model, path)
    assert report.layout == "timm_swin" and report.missing == [] and report.unexpected == []
    return model


@pytest.mark.parametrize("official", [False, True])
def test_timm_swin_converts_exactly_at_224(tmp_path, official):
    reference = random_timm_swin(224, always_partition=True)
    model = converted(reference, tmp_path, official=official)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        for ours, theirs in zip(model.forward_intermediates(images), timm_stage_outputs(reference, images)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_timm_default_differs_where_the_grid_fits_one_window_and_at_384x128(tmp_path):
    """Documented differences (pretrain/README.md): timm drops the shift on a 7x7 grid, pads after the roll."""
    default = random_timm_swin(224)  # always_partition=False, timm's default
    model = converted(default, tmp_path)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours, theirs = model.forward_intermediates(images), timm_stage_outputs(default, images)
    for stage in range(3):
        torch.testing.assert_close(ours[stage], theirs[stage], rtol=0, atol=1e-5)
    assert (ours[3] - theirs[3]).abs().max() > 1e-2

    tall = random_timm_swin((384, 128), always_partition=True)  # no window clamping, only the pad order differs
    model = converted(tall, tmp_path)
    images = torch.randn(2, 3, 384, 128)
    with torch.no_grad():
        assert (model.forward_intermediates(images)[0] - timm_stage_outputs(tall, images)[0]).abs().max() > 1e-2


def test_merge_reorder_matches_timm_patch_merging():
    from timm.models.swin_transformer import PatchMerging as TimmMerging

    from lwtgpf.models.lewinvit import PatchMerging

    torch.manual_seed(0)
    theirs, ours = TimmMerging(dim=5), PatchMerging(dim=5, norm_eps=1e-5)
    with torch.no_grad():
        theirs.norm.weight.normal_(), theirs.norm.bias.normal_()
        ours.norm.weight.copy_(timm_to_unfold_order(theirs.norm.weight))
        ours.norm.bias.copy_(timm_to_unfold_order(theirs.norm.bias))
        ours.reduction.weight.copy_(timm_to_unfold_order(theirs.reduction.weight))
        x = torch.randn(2, 6, 4, 5)
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# PROOF 3: baseline round trips


def test_resnet50_luperson_layout_round_trip(tmp_path):
    torch.manual_seed(1)
    source = ResNet50Reid().eval()
    state = {f"module.encoder_q.{k}": v for k, v in source.backbone.state_dict().items()}
    state["module.encoder_q.fc.0.weight"] = torch.zeros(128, 2048)  # a MoCo projection head, skipped
    torch.save({"state_dict": state}, tmp_path / "lup_moco_r50.pth")

    torch.manual_seed(2)
    target = ResNet50Reid().eval()
    report = load_pretrained(target, tmp_path / "lup_moco_r50.pth")
    assert report.layout == "resnet50" and report.unexpected == []
    assert set(report.missing) == {"necks.bn.weight", "necks.bn.bias", "necks.bn.running_mean",
                                   "necks.bn.running_var", "necks.bn.num_batches_tracked"}
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        a, b = source(images), target(images)
    torch.testing.assert_close(b.stacked(), a.stacked(), rtol=0, atol=1e-6)


def test_vit_small_round_trip_and_pos_embed_resize(tmp_path):
    torch.manual_seed(1)
    source = ViTSmallReid((64, 32)).eval()
    torch.save(source.backbone.state_dict(), tmp_path / "vit_same_grid.pth")
    torch.manual_seed(2)
    target = ViTSmallReid((64, 32)).eval()
    report = load_pretrained(target, tmp_path / "vit_same_grid.pth", layout="vit_small")
    assert report.unexpected == [] and all(k.startswith("necks.") for k in report.missing)
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(images).stacked(), source(images).stacked(), rtol=0, atol=1e-6)

    # TransReID-SSL publishes a square 224 grid inside a DINO teacher with 'backbone.' keys
    square = dict(source.backbone.state_dict(), pos_embed=torch.randn(1, 1 + 14 * 14, 384))
    torch.save({"teacher": {f"backbone.{k}": v for k, v in square.items()}}, tmp_path / "vit_small_cfs_lup.pth")
    report = load_pretrained(target, tmp_path / "vit_small_cfs_lup.pth")
    assert report.layout == "vit_small" and report.unexpected == []
    grid = square["pos_embed"][0, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    expected = nn.functional.interpolate(grid, size=(4, 2), mode="bilinear", align_corners=False)
    torch.testing.assert_close(target.backbone.pos_embed[0, 1:], expected.flatten(2)[0].T)
    torch.testing.assert_close(target.backbone.pos_embed[:, 0], square["pos_embed"][:, 0])
    with pytest.raises(PretrainedError, match="neither a square grid"):
        resize_vit_pos_embed(torch.zeros(1, 1 + 15, 8), (4, 2), num_prefix=1)


def test_build_model_loads_cfg_pretrained(tmp_path, capsys):
    torch.manual_seed(3)
    source = ResNet50Reid()
    torch.save(source.backbone.state_dict(), tmp_path / "r50.pth")
    cfg = load_config("synthetic", {"model.backbone": "resnet50", "model.pretrained": str(tmp_path / "r50.pth")})
    model = build_model(cfg, num_cameras=2)
    assert torch.equal(model.backbone.conv1.weight, source.backbone.conv1.weight)
    assert "layout resnet50" in capsys.readouterr().out


def test_a_run_checkpoint_loads_whole_and_another_camera_count_gets_the_mean_camera(tmp_path):
    cfg = load_config("synthetic")
    torch.manual_seed(5)
    trained = build_model(cfg, num_cameras=4)
    torch.save({"epoch": 3, "model": trained.state_dict()}, tmp_path / "last.pt")  # a Trainer checkpoint's shape
    same = build_model(load_config("synthetic", {"model.pretrained": str(tmp_path / "last.pt")}), num_cameras=4)
    for key, value in trained.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key  # necks and branches too

    fewer = build_model(cfg, num_cameras=2)
    report = load_pretrained(fewer, tmp_path / "last.pt")
    assert report.layout == "lwtgpf" and report.missing == []
    assert "trained for 4 cameras, this dataset has 2" in report.skipped["trunk.camera_embed"]
    mean = trained.trunk.camera_embed.detach().mean(0, keepdim=True)
    assert torch.equal(fewer.trunk.camera_embed.detach(), mean.expand(2, -1, -1))
    other = build_model(load_config("synthetic", {"model.backbone": "lewinvit_t"}), num_cameras=4)
    with pytest.raises(PretrainedError, match="last.pt.*shape"):
        load_pretrained(other, tmp_path / "last.pt")


@pytest.mark.parametrize("wrap", [
    lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DataParallel / DDP
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},  # Lightning-style
    lambda sd: {"model": {f"_orig_mod.module.{k}": v for k, v in sd.items()}},  # torch.compile of DDP
])
def test_wrapped_weights_load_in_every_layout(tmp_path, wrap):
    cfg = load_config("synthetic")
    torch.manual_seed(3)
    trained = build_model(cfg, num_cameras=4)
    torch.save(wrap(trained.state_dict()), tmp_path / "wrapped.pt")
    loaded = build_model(load_config("synthetic", {"model.pretrained": str(tmp_path / "wrapped.pt")}), num_cameras=4)
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    resnet = timm.create_model("resnet50", pretrained=False, num_classes=0)
    torch.save(wrap(resnet.state_dict()), tmp_path / "resnet.pt")
    model = build_model(load_config(None, {"model.backbone": "resnet50", "model.pretrained": str(tmp_path / "resnet.pt")}),
                        num_cameras=4)
    assert torch.equal(model.backbone.conv1.weight, resnet.conv1.weight)


def test_a_checkpoint_of_another_model_names_the_file_and_the_keys(tmp_path):
    small = build_model(load_config("synthetic"), num_cameras=4)
    state = small.state_dict()
    other = build_model(load_config("synthetic", {"model.leff_stages": [True, False, False, False]}), num_cameras=4)
    with pytest.raises(PretrainedError, match=r"run/last.pt: the checkpoint does not fit .* missing: trunk.stages.0"):
        load_model_state(other, state, "run/last.pt")
    wider = build_model(load_config("synthetic", {"model.backbone": "lewinvit_t"}), num_cameras=4)
    with pytest.raises(PretrainedError, match=r"of another shape .*patch_embed"):
        load_model_state(wider, state, "run/last.pt")
    eight = build_model(load_config("synthetic"), num_cameras=8)  # direct transfer: 4 -> 8 cameras
    report = load_model_state(eight, state, "run/last.pt")
    assert "trained for 4 cameras, this dataset has 8" in report.skipped["trunk.camera_embed"]


# ---------------------------------------------------------------------------------------------------
# loud failures


def test_failures_name_the_file_and_the_problem(tmp_path, oracle):
    small = LewinViT(LewinViTShape(24, (2, 2, 2, 2), (1, 2, 4, 8)))
    with pytest.raises(PretrainedError, match=r"patch_embed\.proj\.weight has shape \(16, 3, 4, 4\)"):
        load_pretrained(small, ORACLE)
    with pytest.raises(PretrainedError, match="layout 'solider' holds swin weights, but ResNet50Reid"):
        load_pretrained(ResNet50Reid(), ORACLE)
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "odd.pth")
    with pytest.raises(PretrainedError, match="no known layout"):
        load_pretrained(small, tmp_path / "odd.pth")
    with pytest.raises(PretrainedError, match="unknown pretrained layout 'swin'"):
        load_pretrained(small, ORACLE, layout="swin")
    torch.save({"weights": nn.Linear(2, 2)}, tmp_path / "pickled_module.pth")  # not weights-only loadable
    with pytest.raises(PretrainedError, match="not a weights-only torch checkpoint"):
        load_pretrained(small, tmp_path / "pickled_module.pth")
    with pytest.raises(PretrainedError, match="does not exist"):
        load_pretrained(small, tmp_path / "missing.pth")
