"""LWTGPF dual branch, BN necks, test-time features, baselines and the backbone registry."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lwtgpf.config import ConfigError, load_config
from lwtgpf.models import BACKBONES, LEWINVIT_SHAPES, LWTGPF, LewinViT, LewinViTShape, ResNet50Reid, ViTSmallReid, build_model
from lwtgpf.models.base import stripe_pool

SHAPE = LewinViTShape(embed_dim=8, depths=(1, 1, 2, 2), num_heads=(1, 2, 2, 4))


def small_lwtgpf(**kwargs) -> LWTGPF:
    torch.manual_seed(0)
    return LWTGPF(LewinViT(SHAPE, num_cameras=3), **kwargs)


def test_lwtgpf_moves_the_last_stage_into_two_independent_branches():
    model = small_lwtgpf()
    assert len(model.trunk.stages) == 3 and model.trunk.stages[-1].downsample is not None
    assert model.branches[0].downsample is None and len(model.branches[0].blocks) == 2
    b1, b2 = (dict(b.named_parameters()) for b in model.branches)
    assert all(torch.equal(b1[k], b2[k]) and b1[k].data_ptr() != b2[k].data_ptr() for k in b1)
    assert model.feature_dim == 64 and model.num_parts == 5


def test_lwtgpf_features_follow_the_spec_and_every_parameter_trains():
    model = small_lwtgpf().train()
    images, cams = torch.randn(4, 3, 384, 128), torch.tensor([0, 1, 2, 0])
    feats = model(images, cams)
    assert feats.global_feat.shape == (4, 64) and feats.parts.shape == (4, 5, 64)
    torch.testing.assert_close(feats.stacked().norm(dim=-1), torch.ones(4, 6))
    sum(f.sum() * w for f, w in zip(feats.stacked().unbind(1), torch.arange(1.0, 7.0))).backward()
    frozen = {"necks.bn.bias"}
    for name, p in model.named_parameters():
        if name in frozen:
            assert not p.requires_grad and torch.equal(p, torch.zeros_like(p))
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient (dead parameter)"

    model.eval()
    with torch.no_grad():
        tokens = model.trunk(images, cams)
        assert tokens.shape == (4, 12, 4, 64)  # 384x128 -> 12x4 after stage 2's merge
        b1, b2 = model.branches[0](tokens), model.branches[1](tokens)
        expected = torch.cat([((b1.mean((1, 2)) + b2.mean((1, 2))) / 2)[:, None],
                              b1[:, :6].mean((1, 2))[:, None], b1[:, 6:].mean((1, 2))[:, None],
                              b2[:, :4].mean((1, 2))[:, None], b2[:, 4:8].mean((1, 2))[:, None],
                              b2[:, 8:].mean((1, 2))[:, None]], dim=1)
        torch.testing.assert_close(model.pooled(images, cams), expected, rtol=0, atol=1e-5)
        bn = model.necks.bn
        normed = (expected.flatten(1) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight
        torch.testing.assert_close(model(images, cams).stacked(), F.normalize(normed.view(4, 6, 64), dim=-1))


def test_features_are_float32_under_bf16_autocast():
    model = small_lwtgpf().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = model(torch.randn(2, 3, 64, 32), torch.tensor([0, 1]))
    assert feats.global_feat.dtype == torch.float32 and feats.parts.dtype == torch.float32
    feats.stacked().sum().backward()
    assert model.trunk.stages[0].blocks[0].attn.qkv.weight.grad is not None


def test_stripe_pool_is_adaptive_average_over_rows():
    tokens = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, 2, 3)
    assert stripe_pool(tokens, 2)[0, :, 0].tolist() == [1.5, 5.5]
    assert stripe_pool(tokens, 3)[0, :, 0].tolist() == [1.0, 3.5, 6.0]  # bands 0-2, 2-5, 5-8


@pytest.mark.parametrize("hw", [(256, 128), (100, 52)])
def test_lwtgpf_runs_at_other_sizes(hw):
    model = small_lwtgpf().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *hw), torch.tensor([0, 1])).parts.shape == (2, 5, 64)


def test_test_features_selection_and_flip_averaging():
    images, cams = torch.randn(3, 3, 64, 32), torch.tensor([0, 1, 2])
    model = small_lwtgpf().eval()
    with torch.no_grad():
        feats = model(images, cams)
        torch.testing.assert_close(model.test_features(images, cams), feats.global_feat)
        model.test_feature = "global+parts"
        both = model.test_features(images, cams)
        assert both.shape == (3, 6 * 64) and model.test_feature_dim == 6 * 64
        torch.testing.assert_close(both, F.normalize(feats.stacked().flatten(1), dim=1))
        model.test_feature, model.flip_test = "global", True
        flipped = model(images.flip(-1), cams).global_feat
        torch.testing.assert_close(model.test_features(images, cams),
                                   F.normalize(feats.global_feat + flipped, dim=1))
        assert (flipped - feats.global_feat).abs().max() > 1e-4  # flipping is not a no-op
    with pytest.raises(ValueError, match="test_feature must be one of"):
        small_lwtgpf(test_feature="parts")


def test_lwtgpf_attention_capture_reads_the_chosen_branch():
    model = small_lwtgpf().eval()
    images, cams = torch.randn(1, 3, 128, 64), torch.tensor([1])
    with torch.no_grad():
        model.branches[1].blocks[0].attn.qkv.weight.mul_(3)  # make the branches differ
        _, (b1,) = model.forward_with_attention(images, cams, [(3, 0)], branch=0)
        _, (b2,) = model.forward_with_attention(images, cams, [(3, 0)], branch=1)
    assert b1.grid_hw == (4, 2) and b1.stride_px == 32
    assert (b1.weights - b2.weights).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------
# registry


def test_build_model_reads_cfg_model():
    cfg = load_config("synthetic", {"model.leff_stages": [False, False, True, True], "model.drop_path": 0.2,
                                    "model.sie_coef": 1.5, "model.grad_checkpointing": True,
                                    "model.test_feature": "global+parts", "model.flip_test": True})
    model = build_model(cfg, num_cameras=4)
    assert isinstance(model, LWTGPF) and model.trunk.camera_embed.shape[0] == 4 and model.trunk.sie_coef == 1.5
    assert model.trunk.stages[2].blocks[0].mlp.local is not None and model.trunk.stages[0].blocks[0].mlp.local is None
    assert model.branches[1].blocks[0].mlp.local is not None
    assert model.branches[0].blocks[-1].drop_path.drop_prob == pytest.approx(0.2)
    assert model.trunk.stages[0].grad_checkpointing and model.branches[0].grad_checkpointing
    assert model.test_feature == "global+parts" and model.flip_test
    no_cams = build_model(load_config("synthetic", {"model.camera_embedding": False}), num_cameras=4)
    assert no_cams.trunk.camera_embed is None
    with pytest.raises(ConfigError, match="model.backbone 'swin_huge' is not one of: lewinvit_base"):
        load_config("synthetic", {"model.backbone": "swin_huge"})  # refused before any model is built
    cfg = load_config("synthetic")
    cfg.model.backbone = "swin_huge"  # a Config edited by hand past the checks
    with pytest.raises(ValueError, match="unknown model.backbone 'swin_huge'; known: lewinvit_tiny"):
        build_model(cfg, num_cameras=2)
    assert {"lewinvit_tiny", "lewinvit_t", "lewinvit_small", "lewinvit_base", "resnet50", "vit_small"} <= set(BACKBONES)


def test_lwtgpf_swin_s_parameter_count():
    cfg = load_config(None, {"model.backbone": "lewinvit_small"})
    with torch.device("meta"):
        model = build_model(cfg, num_cameras=6)
        backbone = LewinViT(LEWINVIT_SHAPES["lewinvit_small"], num_cameras=6)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    last_stage = count(backbone.stages[3])
    # backbone + one more copy of stage 3 + six 768-d BN necks (weight + frozen bias)
    assert count(model) == count(backbone) + last_stage + 6 * 768 * 2
    assert last_stage == 2 * (2 * 768 * 2 + 169 * 24 + 768 * 2304 + 2304 + 768 * 768 + 768 + 2 * 768 * 3072 + 3072 + 768)


# ---------------------------------------------------------------------------------------------------
# baselines


def test_resnet50_has_last_stride_one_and_three_parts():
    torch.manual_seed(0)
    for pooling in ("avg", "gem"):
        model = ResNet50Reid(pooling=pooling).eval()
        with torch.no_grad():
            fmap = model.backbone.forward_features(torch.randn(2, 3, 128, 64))
            feats = model(torch.randn(2, 3, 128, 64), None)
        assert fmap.shape == (2, 2048, 8, 4)  # stride 16, not 32
        assert feats.global_feat.shape == (2, 2048) and feats.parts.shape == (2, 3, 2048)
        torch.testing.assert_close(feats.stacked().norm(dim=-1), torch.ones(2, 4))
    assert isinstance(model.pool.p, torch.nn.Parameter)
    with pytest.raises(ValueError, match="pooling must be"):
        ResNet50Reid(pooling="max")


def test_vit_small_builds_position_embeddings_for_the_input_grid():
    cfg = load_config("synthetic", {"model.backbone": "vit_small", "model.grad_checkpointing": True,
                                    "data.height": 128, "data.width": 64})
    model = build_model(cfg, num_cameras=2).eval()
    assert model.backbone.grad_checkpointing
    assert isinstance(model, ViTSmallReid) and model.grid_size == (8, 4)
    assert model.backbone.pos_embed.shape == (1, 1 + 8 * 4, 384)
    with torch.no_grad():
        feats = model(torch.randn(2, 3, 128, 64), torch.tensor([0, 1]))
    assert feats.global_feat.shape == (2, 384) and feats.parts.shape == (2, 3, 384)
