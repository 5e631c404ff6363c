"""LewinViT: window geometry, shifted-window mask, merging order, SIE, LeFF, drop-path, attention capture."""
from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import nn

from lwtgpf.models.lewinvit import (
    LEWINVIT_SHAPES,
    MASK_VALUE,
    LewinViT,
    LewinViTShape,
    PatchMerging,
    WindowAttention,
    shifted_window_mask,
    window_partition,
    window_tokens,
)

# embed 8, every stage 2 blocks (a plain and a shifted one): fast, yet every code path runs
SMALL = LewinViTShape(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


def small_model(**kwargs) -> LewinViT:
    torch.manual_seed(0)
    return LewinViT(SMALL, **kwargs).eval()


def expected_grid(h: int, w: int, stage: int) -> tuple[int, int]:
    h, w = math.ceil(h / 4), math.ceil(w / 4)
    for _ in range(stage):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


# ---------------------------------------------------------------------------------------------------
# geometry


def test_window_partition_is_row_major():
    x = torch.randn(2, 14, 21, 3)
    windows = window_partition(x, 7)
    assert windows.shape == (2, 6, 49, 3)
    assert torch.equal(windows[0, 1, 0], x[0, 0, 7])  # second window of the first row starts at column 7
    assert torch.equal(windows[1, 4, 8], x[1, 8, 8])  # window (1, 1), offset (1, 1)


@pytest.mark.parametrize("shift", [0, 3])
def test_window_tokens_are_the_padded_rolled_partition_of_the_grid(shift):
    H, W = 9, 5
    grid = torch.arange(H * W).view(1, H, W, 1)
    padded = nn.functional.pad(grid, (0, 0, 0, 2, 0, 5), value=-1)  # 9x5 -> 14x7
    rolled = torch.roll(padded, shifts=(-shift, -shift), dims=(1, 2))
    assert torch.equal(window_tokens(H, W, 7, shift), window_partition(rolled, 7)[0, ..., 0])


def direct_shift_mask(Hp: int, Wp: int, window: int, shift: int) -> torch.Tensor:
    """Token pairs of a rolled window may attend iff both or neither wrapped around, per axis."""
    rows_h, rows_w = Hp // window, Wp // window
    n = window * window
    mask = torch.zeros(rows_h * rows_w, n, n)
    for wr in range(rows_h):
        for wc in range(rows_w):
            for i in range(n):
                for j in range(n):
                    ri, ci = wr * window + i // window, wc * window + i % window
                    rj, cj = wr * window + j // window, wc * window + j % window
                    same_rows = (ri >= Hp - shift) == (rj >= Hp - shift)
                    same_cols = (ci >= Wp - shift) == (cj >= Wp - shift)
                    if not (same_rows and same_cols):
                        mask[wr * rows_w + wc, i, j] = MASK_VALUE
    return mask


@pytest.mark.parametrize("Hp,Wp", [(7, 7), (14, 7), (21, 14)])
def test_shifted_window_mask_matches_direct_construction(Hp, Wp):
    assert torch.equal(shifted_window_mask(Hp, Wp, 7, 3), direct_shift_mask(Hp, Wp, 7, 3))


def test_patch_merging_uses_unfold_channel_major_order_and_pads_odd_sizes():
    torch.manual_seed(0)
    merge = PatchMerging(dim=3, norm_eps=1e-5)
    for H, W in [(4, 6), (5, 3)]:
        x = torch.randn(2, H, W, 3)
        padded = nn.functional.pad(x.permute(0, 3, 1, 2), (0, W % 2, 0, H % 2))  # zeros bottom/right
        unfolded = nn.Unfold(kernel_size=2, stride=2)(padded).transpose(1, 2)  # (B, L, 4C) channel-major
        expected = merge.reduction(merge.norm(unfolded)).view(2, (H + 1) // 2, (W + 1) // 2, 6)
        torch.testing.assert_close(merge(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("hw", [(384, 128), (256, 128), (128, 64), (97, 45), (30, 30)])
def test_any_input_size_gives_the_ceil_grid_at_every_stage(hw):
    model = small_model()
    with torch.no_grad():
        outs = model.forward_intermediates(torch.randn(1, 3, *hw))
    for stage, out in enumerate(outs):
        assert out.shape == (1, *expected_grid(*hw, stage), SMALL.stage_dim(stage))
        assert torch.isfinite(out).all()


def reference_window_attention(attn: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """SOLIDER's steps one by one: zero-pad, roll, partition, qkv, masked attention, reverse, roll back, crop."""
    B, H, W, C = x.shape
    w, s, heads = attn.window, attn.shift, attn.num_heads
    pad_b, pad_r = (-H) % w, (-W) % w
    x = torch.roll(nn.functional.pad(x, (0, 0, 0, pad_r, 0, pad_b)), shifts=(-s, -s), dims=(1, 2))
    Hp, Wp = x.shape[1:3]
    windows = window_partition(x, w).reshape(-1, w * w, C)  # (B * nW, N, C)
    q, k, v = attn.qkv(windows).view(-1, w * w, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    scores = (q * attn.scale) @ k.transpose(-2, -1) + attn.position_bias()
    if s:
        mask = shifted_window_mask(Hp, Wp, w, s)
        scores = (scores.view(B, -1, heads, w * w, w * w) + mask.unsqueeze(1)).flatten(0, 1)
    out = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, Hp // w, Wp // w, w, w, C))
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
    return torch.roll(out, shifts=(s, s), dims=(1, 2))[:, :H, :W]


@pytest.mark.parametrize("shift", [0, 3])
@pytest.mark.parametrize("hw", [(9, 5), (7, 14), (3, 2)])
def test_window_attention_equals_the_step_by_step_reference_with_gradients(shift, hw):
    """The gathers (qkv of real tokens, bias in the padding, one index_select each way) are exact."""
    torch.manual_seed(0)
    attn = WindowAttention(dim=12, num_heads=3, window=7, shift=shift)
    nn.init.normal_(attn.qkv.bias)  # a non-zero bias, so padding tokens differ from zeros
    x = torch.randn(2, *hw, 12, requires_grad=True)
    grads = []
    for run in (attn, lambda t: reference_window_attention(attn, t)):
        out = run(x)
        params = [x, attn.qkv.weight, attn.qkv.bias, attn.relative_position_bias_table, attn.proj.weight]
        grads.append((out.detach(), *torch.autograd.grad(out.pow(2).sum(), params)))
    for ours, reference in zip(*grads):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_window_indices_cached_in_inference_mode_still_train():
    attn = WindowAttention(dim=12, num_heads=3, window=7, shift=3)
    with torch.inference_mode():
        attn(torch.randn(1, 11, 6, 12))  # fills the per-shape caches
    x = torch.randn(1, 11, 6, 12, requires_grad=True)
    attn(x).sum().backward()
    assert x.grad is not None


def test_padding_tokens_are_keys_in_plain_windows_and_masked_in_shifted_ones():
    model = small_model()
    x = torch.randn(1, 3, 20, 12)  # stage-0 grid 5x3, one 7x7 window after padding
    with torch.no_grad():
        _, maps = model.forward_with_attention(x, None, blocks=[(0, 0), (0, 1)])
    plain, shifted = maps
    assert plain.grid_hw == (5, 3) and plain.padded_hw == (7, 7) and plain.pad == (2, 4)
    positions = plain.token_grid_positions()[0]
    padding = positions[:, 0] < 0
    assert padding.sum() == 49 - 15
    # mmseg/SOLIDER semantics: no mask in a non-shifted window, padded zeros get attention mass
    assert (plain.weights[0, 0, :, ~padding][..., padding] > 1e-3).all()
    # the shifted window's mask, built on the padded 7x7 map, zeroes cross-region pairs
    mask = shifted_window_mask(7, 7, 7, 3)[0]
    assert (shifted.weights[0, 0][:, mask < 0] < 1e-30).all()
    real_queries = shifted.token_grid_positions()[0][:, 0] >= 0
    assert (shifted.weights[0, 0][:, (mask == 0) & real_queries[:, None]] > 0).all()
    # padding queries are cropped, so never computed: their rows are 0 in both blocks
    assert (shifted.weights[0, 0][:, ~real_queries] == 0).all() and (plain.weights[0, 0][:, padding] == 0).all()


# ---------------------------------------------------------------------------------------------------
# camera embedding, LeFF, drop-path, checkpointing


def test_camera_embedding_changes_outputs_per_camera_at_test_time():
    model = small_model(num_cameras=3, sie_coef=3.0)
    x = torch.randn(1, 3, 64, 32).expand(3, -1, -1, -1)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1, 0]))
    torch.testing.assert_close(out[0], out[2], rtol=0, atol=1e-6)
    assert (out[0] - out[1]).abs().max() > 1e-3
    assert model.camera_embed.shape == (3, 1, SMALL.embed_dim)
    with pytest.raises(ValueError, match="pass camids"):
        model(x)
    with pytest.raises(ValueError, match=r"camera ids must be in \[0, 3\)"):
        model(x, torch.tensor([0, 1, 3]))
    assert small_model(num_cameras=0).camera_embed is None


def test_leff_is_bit_identical_at_init_and_gets_gradients():
    plain = small_model()
    leff = LewinViT(SMALL, leff_stages=(True, False, True, True)).eval()
    result = leff.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(".mlp.local." in k for k in result.missing_keys)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(leff(x), plain(x))
    leff.train()
    leff(x).pow(2).mean().backward()
    local_grads = [m.local.weight.grad for m in leff.modules() if getattr(m, "local", None) is not None]
    assert len(local_grads) == 2 + 2 + 2  # blocks of stages 0, 2, 3
    assert all(g is not None and g.abs().sum() > 0 for g in local_grads)


def test_drop_path_rises_linearly_over_all_blocks():
    model = LewinViT(SMALL, drop_path=0.7)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in model.stages for b in s.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.7, 8))


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients():
    x = torch.randn(2, 3, 64, 32)
    grads = []
    for checkpointing in (False, True):
        model = small_model().train()
        model.set_grad_checkpointing(checkpointing)
        out = model(x)
        out.pow(2).sum().backward()
        grads.append((out.detach(), model.stages[0].blocks[1].attn.qkv.weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


# ---------------------------------------------------------------------------------------------------
# attention capture


def test_attention_capture_shapes_geometry_and_unchanged_output():
    model = small_model(num_cameras=2)
    x, cams = torch.randn(2, 3, 384, 128), torch.tensor([0, 1])
    with torch.no_grad():
        plain = model(x, cams)
        out, maps = model.forward_with_attention(x, cams, blocks=[(1, 1), (3, 0)])
    torch.testing.assert_close(out, plain, rtol=0, atol=0)  # capturing does not change the output
    shifted, last = maps
    assert (shifted.stage, shifted.block, shifted.shift, shifted.window) == (1, 1, 3, 7)
    assert shifted.grid_hw == (48, 16) and shifted.padded_hw == (49, 21) and shifted.pad == (1, 5)
    assert shifted.stride_px == 8 and last.stride_px == 32
    assert shifted.weights.shape == (2, 7 * 3, 2, 49, 49)
    assert last.grid_hw == (12, 4) and last.shift == 0 and last.weights.shape == (2, 2, 4, 49, 49)
    for block in (shifted, last):  # real queries' rows are distributions, padding queries' rows are 0
        real_queries = (block.token_grid_positions()[..., 0] >= 0).float()  # (nW, N)
        expected = real_queries[None, :, None, :].expand_as(block.weights[..., 0])
        torch.testing.assert_close(block.weights.sum(-1), expected)
    # every real grid cell appears exactly once among the window tokens
    positions = shifted.token_grid_positions().view(-1, 2)
    real = positions[positions[:, 0] >= 0]
    assert real.shape[0] == 48 * 16 and torch.unique(real[:, 0] * 16 + real[:, 1]).numel() == 48 * 16
    heat = shifted.query_map(batch=1, row=47, col=15)  # a corner query whose window wraps around
    assert heat.shape == (2, 48, 16) and heat[:, 47, 15].gt(0).all()
    assert (heat.sum((1, 2)) <= 1 + 1e-5).all()
    assert all(b.attn.captured is None and not b.attn.capture for s in model.stages for b in s.blocks)
    with pytest.raises(ValueError, match="no block"):
        model.forward_with_attention(x, cams, blocks=[(3, 2)])


# ---------------------------------------------------------------------------------------------------
# parameter counts (construction only, on the meta device)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_swin_s_parameter_count_equals_timm_minus_head_and_final_norm():
    with torch.device("meta"):
        ours = LewinViT(LEWINVIT_SHAPES["lewinvit_small"])
        reference = timm.create_model("swin_small_patch4_window7_224", pretrained=False)
    # identical blocks, merges and patch embedding; timm adds a final LayerNorm and the ImageNet head
    assert param_count(ours) == param_count(reference) - param_count(reference.head) - param_count(reference.norm)


def test_shape_registry_and_leff_parameter_count():
    assert LEWINVIT_SHAPES["lewinvit_t"].depths == (2, 2, 6, 2)
    assert LEWINVIT_SHAPES["lewinvit_base"].out_dim == 1024
    with torch.device("meta"):
        plain = LewinViT(LEWINVIT_SHAPES["lewinvit_small"], num_cameras=6)
        leff = LewinViT(LEWINVIT_SHAPES["lewinvit_small"], num_cameras=6, leff_stages=(False, False, True, True))
    hidden = [4 * 96 * 2**i for i in range(4)]
    extra = 18 * (hidden[2] * 10) + 2 * (hidden[3] * 10)  # depthwise 3x3 weights + bias per block
    assert param_count(leff) - param_count(plain) == extra
    assert param_count(plain) == 48_835_722 + 6 * 96  # + the camera table
    with pytest.raises(ValueError, match="leff_stages needs 4 flags"):
        LewinViT(SMALL, leff_stages=(True,))
