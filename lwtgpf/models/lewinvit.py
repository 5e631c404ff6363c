"""LewinViT: the hierarchical shifted-window transformer of SPEC section 2, in SOLIDER/mmseg semantics.

Read top to bottom: window helpers -> the shifted-window mask -> the window gathers (pad + roll +
partition as one index copy) -> window attention -> LeFF MLP ->
attention capture -> block -> patch merging -> stage -> the network (patch embedding, camera embedding,
stages) -> `capture_attention`.

Token maps travel as (B, H, W, C). Three details decide whether SOLIDER checkpoints reproduce
(`tests/test_pretrained.py` checks them against SOLIDER's own outputs):
- a block pads its (LayerNorm-ed) map bottom/right with zeros up to a multiple of the window, THEN shifts;
  padded tokens are ordinary keys in non-shifted windows (no mask), and the shifted-window mask is built
  on the padded map. timm clamps the window to small grids and shifts before padding: at 384x128 the two
  differ (SPEC 11), so this module owns its attention block.
- patch merging sits at the END of stages 0-2 and orders its 4C vector channel-major, as nn.Unfold does:
  index c * 4 + 2 * dy + dx for the 2x2 neighbour (dy, dx).
- LayerNorm eps is 1e-5 (PyTorch's default, which SOLIDER's mmcv layers and timm use). SPEC 2 says 1e-6,
  the value of the LWTGPF-2025 code; with 1e-6 the fixture's token maps are off by ~1e-3 at the patch
  embedding already, with 1e-5 they match exactly. `LewinViTShape.norm_eps` keeps it switchable.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from .shapes import LEWINVIT_SHAPES, LewinViTShape  # noqa: F401  (re-exported: one family per file)

MASK_VALUE = -100.0  # what SOLIDER/Swin add to cross-region scores in shifted windows (not -inf)


# ---------------------------------------------------------------------------------------------------
# Windows


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, Hp, Wp, C) with Hp, Wp multiples of `window` -> (B, nW, window * window, C), windows row-major."""
    B, Hp, Wp, C = x.shape
    x = x.view(B, Hp // window, window, Wp // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, -1, window * window, C)


def window_padded_size(H: int, W: int, window: int) -> tuple[int, int]:
    """(Hp, Wp): H and W zero-padded bottom/right up to multiples of `window`."""
    return H + (-H) % window, W + (-W) % window


@functools.lru_cache(maxsize=None)
@torch.inference_mode(False)  # cached tensors must stay usable by autograd
def shifted_window_mask(
    Hp: int, Wp: int, window: int, shift: int, device: torch.device | None = None
) -> torch.Tensor:
    """Additive attention mask (nW, N, N) of the shifted windows of a padded Hp x Wp map, N = window**2.

    After rolling the map by -shift, the last window row/column wraps tokens from the opposite border;
    tokens may only attend to tokens of their own pre-roll region, else they get MASK_VALUE. The
    regions are the three bands [0, Hp - window), [Hp - window, Hp - shift), [Hp - shift, Hp) per axis,
    built on the PADDED size (the mmseg/SOLIDER rule). Cached per shape: treat the result as read-only.
    """
    def band(size: int) -> torch.Tensor:
        idx = torch.arange(size, device=device)
        return (idx >= size - window).long() + (idx >= size - shift).long()

    region = band(Hp)[:, None] * 3 + band(Wp)[None, :]  # (Hp, Wp) region id 0..8
    region_windows = window_partition(region[None, :, :, None], window)[0, ..., 0]  # (nW, N)
    different = region_windows[:, None, :] != region_windows[:, :, None]
    return different.float() * MASK_VALUE


@functools.lru_cache(maxsize=None)
@torch.inference_mode(False)  # cached tensors must stay usable by autograd
def window_tokens(H: int, W: int, window: int, shift: int, device: torch.device | None = None) -> torch.Tensor:
    """(nW, N) long: the grid index row * W + col of every window token of an H x W map; -1 marks padding.

    Windows tile the map zero-padded to (Hp, Wp) and rolled by -shift, row-major: token n of window
    (wr, wc) holds padded cell ((wr * window + n // window + shift) % Hp, (wc * window + n % window + shift) % Wp).
    Cached per shape: treat the result as read-only.
    """
    Hp, Wp = window_padded_size(H, W, window)
    rows = (torch.arange(Hp, device=device) + shift) % Hp
    cols = (torch.arange(Wp, device=device) + shift) % Wp
    index = torch.where((rows[:, None] < H) & (cols[None, :] < W), rows[:, None] * W + cols[None, :], -1)
    return window_partition(index[None, :, :, None], window)[0, ..., 0]


# ---------------------------------------------------------------------------------------------------
# Attention


def relative_position_index(window: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 bias table for every (query, key) pair of a window, N = w*w."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N) in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


@dataclass(frozen=True)
class WindowGather:
    """Index tensors that move the qkv rows of a (B, H, W) token map into windows and back.

    Rows: qkv(x).view(B, H * W * 3 * heads, d), ordered (token, q/k/v, head). Slots: what the attention
    matmuls read as contiguous tensors: q (nW, heads, Q), then k and v (nW, heads, N) each. Keys are all N
    tokens of a window, padding included (SOLIDER semantics); queries are only the first Q of each window
    in `query_pos` order, enough for its real tokens: outputs of padding queries are cropped anyway, and
    on small grids (the last stage at 384x128: 28 real tokens of 49) this skips most of the attention.
    Every row fills exactly one slot (windows partition the map); the other slots hold the padding.

    num_windows, num_queries: nW and Q;
    query_pos: (nW, Q) window positions of the queries: the real tokens in order, then padding positions;
        None when Q = N (every position a query, in order);
    slot_of_row: (H * W * 3 * heads,) the slot of every row;
    row_of_slot: (num_slots,) the row every slot copies (padding slots: row 0, then overwritten);
    pad_slots, pad_bias_rows: the padding slots and the row of qkv.bias.view(3 * heads, d) they hold;
    out_slots: (H * W * heads,) the slot of every (token, head) in the (window, head, Q) attention output.
    """

    num_windows: int
    num_queries: int
    query_pos: torch.Tensor | None
    slot_of_row: torch.Tensor
    row_of_slot: torch.Tensor
    pad_slots: torch.Tensor
    pad_bias_rows: torch.Tensor
    out_slots: torch.Tensor



@functools.lru_cache(maxsize=None)
@torch.inference_mode(False)  # cached tensors must stay usable by autograd
def window_gather(H: int, W: int, window: int, shift: int, heads: int,
                  device: torch.device | None = None) -> WindowGather:
    """The WindowGather of an H x W map (cached per shape: read-only tensors)."""
    tokens = window_tokens(H, W, window, shift, device)  # (nW, N)
    nW, N = tokens.shape
    num_queries = int((tokens >= 0).sum(1).max())
    query_pos = None
    if num_queries < N:  # real tokens first, in window order
        query_pos = (tokens < 0).int().argsort(dim=1, stable=True)[:, :num_queries]
    token = {"q": tokens if query_pos is None else tokens.gather(1, query_pos), "k": tokens, "v": tokens}
    head = torch.arange(heads, device=device).view(1, heads, 1)
    row_of_slot, pad_bias_rows = [], []
    for part, name in enumerate("qkv"):
        t = token[name].unsqueeze(1)  # (nW, 1, Q or N) -> slots (nW, heads, Q or N)
        row_of_slot.append(((t.clamp(min=0) * 3 + part) * heads + head).reshape(-1))
        pad_bias_rows.append((part * heads + head).expand(nW, heads, t.shape[-1]).reshape(-1))
    row_of_slot, pad_bias_rows = torch.cat(row_of_slot), torch.cat(pad_bias_rows)
    padding = torch.cat([(token[name].unsqueeze(1) < 0).expand(nW, heads, -1).reshape(-1) for name in "qkv"])
    pad_slots = padding.nonzero().squeeze(1)
    real_slots = (~padding).nonzero().squeeze(1)
    slot_of_row = real_slots[row_of_slot[real_slots].argsort()]
    out_slots = slot_of_row.view(H * W, 3, heads)[:, 0].reshape(-1)  # q slots come first: = output slots
    return WindowGather(nW, num_queries, query_pos, slot_of_row, row_of_slot, pad_slots, pad_bias_rows[pad_slots],
                        out_slots)


class GatherWindows(torch.autograd.Function):
    """rows (B, R, d), bias_rows (3 * heads, d) -> (B, num_slots, d) window slots (see WindowGather).

    A custom backward because each row fills exactly one slot: the rows' gradient is a plain gather of the
    slots' gradient (autograd's index_select backward would zero-fill and scatter-add), and the padding
    slots' gradient goes to the bias.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, bias_rows: torch.Tensor, gather: WindowGather) -> torch.Tensor:
        slots = rows.index_select(1, gather.row_of_slot)
        fill = bias_rows.index_select(0, gather.pad_bias_rows).to(slots.dtype)  # padding: qkv of a zero
        slots.index_copy_(1, gather.pad_slots, fill.expand(slots.shape[0], -1, -1))
        ctx.gather = gather
        ctx.bias_rows_meta = (bias_rows.shape, bias_rows.dtype)
        return slots

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        gather = ctx.gather
        shape, dtype = ctx.bias_rows_meta
        grad_rows = grad.index_select(1, gather.slot_of_row)
        grad_pad = grad.index_select(1, gather.pad_slots).sum(0).to(dtype)
        grad_bias = grad.new_zeros(shape, dtype=dtype).index_add_(0, gather.pad_bias_rows, grad_pad)
        return grad_rows, grad_bias, None


class WindowAttention(nn.Module):
    """(Shifted-)window multi-head self-attention with a learned relative position bias, on a (B, H, W, C) map.

    Semantics are SOLIDER's: zero-pad bottom/right to whole windows, roll by -shift, attend inside each
    window (cross-region pairs of shifted windows masked), roll back, crop. Two exact shortcuts: a padded
    zero token projects to qkv.bias, so qkv runs on the real tokens only and the padding is filled with the
    bias; proj is per token, so it runs after the crop. At 384x128 this skips about a fifth of Swin-S's
    FLOPs (stage 2 pads 24x8 to 28x14) with identical outputs.

    Layout (what makes it fast on a CPU, where memory copies cost as much as the small matmuls): pad + roll +
    partition + the q/k/v/head split are ONE gather (`WindowGather`) straight into contiguous q
    (B, nW, heads, Q, d) and k, v (B, nW, heads, N, d), Q <= N the queries that are not cropped; the roll
    back + crop + head merge is one index_select back to (B, H, W, C).
    """

    def __init__(self, dim: int, num_heads: int, window: int, shift: int):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.num_heads = num_heads
        self.window = window
        self.shift = shift
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        # recomputed, not stored: every checkpoint layout derives the same index from the window size
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.capture = False  # set by capture_attention(); the weights then land in `captured`
        self.captured: tuple[torch.Tensor, tuple[int, int], tuple[int, int]] | None = None

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N)."""
        N = self.window * self.window
        # index_select, not [] indexing: its backward is an index_add, not a sorting index_put
        bias = self.relative_position_bias_table.index_select(0, self.relative_position_index.view(-1))
        return bias.view(N, N, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        B, H, W, C = x.shape
        d, N = C // self.num_heads, self.window**2
        gather = window_gather(H, W, self.window, self.shift, self.num_heads, x.device)
        rows = self.qkv(x).view(B, -1, d)  # (B, H * W * 3 * heads, d), rows ordered (token, q/k/v, head)
        slots = GatherWindows.apply(rows, self.qkv.bias.view(-1, d), gather)
        nW, Q, heads = gather.num_windows, gather.num_queries, self.num_heads
        q, k, v = slots.split([nW * heads * Q, nW * heads * N, nW * heads * N], dim=1)  # backward: one cat
        q, k, v = q.view(B, nW, heads, Q, d), k.view(B, nW, heads, N, d), v.view(B, nW, heads, N, d)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).add_(self.attention_bias(H, W, gather).to(q.dtype))
        attn = attn.softmax(dim=-1)  # (B, nW, heads, Q, N)
        if self.capture:
            weights = self.full_window_weights(attn.detach(), H, W, gather)
            self.captured = (weights, (H, W), window_padded_size(H, W, self.window))
        out = (attn @ v).view(B, -1, d)  # (B, nW * heads * Q, d)
        return self.proj(out.index_select(1, gather.out_slots).view(B, H, W, C))

    def attention_bias(self, H: int, W: int, gather: WindowGather) -> torch.Tensor:
        """(1 or nW, heads, Q, N): relative position bias, plus the shifted-window mask, of the query rows."""
        bias = self.position_bias().unsqueeze(0)  # (1, heads, N, N)
        if self.shift:
            Hp, Wp = window_padded_size(H, W, self.window)
            bias = bias + shifted_window_mask(Hp, Wp, self.window, self.shift, device=bias.device).unsqueeze(1)
        if gather.query_pos is not None:
            bias = torch.take_along_dim(bias, gather.query_pos[:, None, :, None], dim=2)
        return bias

    def full_window_weights(self, attn: torch.Tensor, H: int, W: int, gather: WindowGather) -> torch.Tensor:
        """(B, nW, heads, Q, N) -> (B, nW, heads, N, N), the rows of padding queries 0 (they are cropped)."""
        B, nW, heads, Q, N = attn.shape
        if gather.query_pos is not None:
            index = gather.query_pos[None, :, None, :, None].expand(B, nW, heads, Q, N)
            attn = attn.new_zeros(B, nW, heads, N, N).scatter_(3, index, attn)
        padding = window_tokens(H, W, self.window, self.shift, attn.device) < 0  # (nW, N)
        return attn.masked_fill(padding[None, :, None, :, None], 0)


# ---------------------------------------------------------------------------------------------------
# MLP with optional local enhancement (LeFF)


class LeFFMlp(nn.Module):
    """fc1 -> GELU -> [h + GELU(depthwise 3x3 conv of h on the token grid)] -> fc2.

    With `local=False` this is the plain Swin MLP. With `local=True` the depthwise conv's weight and bias
    start at zero, so the bracket is h + GELU(0) = h exactly: a pretrained MLP gives bit-identical outputs
    at step 0. The conv still learns: its weight gradient is GELU'(0) = 0.5 times dL/dh correlated with h,
    non-zero. (Zeroing fc2-side weights instead would also cut the gradient of the conv.)
    """

    def __init__(self, dim: int, hidden: int, local: bool):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.local = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if local else None
        if self.local is not None:
            nn.init.zeros_(self.local.weight)
            nn.init.zeros_(self.local.bias)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) -> (B, H, W, C)."""
        h = self.act(self.fc1(x))
        if self.local is not None:
            h = h + self.act(self.local(h.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return self.fc2(h)


# ---------------------------------------------------------------------------------------------------
# Attention capture: the weights of chosen blocks and the geometry to draw them


@dataclass
class AttentionMap:
    """Attention weights of one block for one batch, with the geometry that maps keys back to pixels.

    weights: (B, nW, heads, N, N), windows row-major over the padded (and, if shift > 0, rolled) map;
    query/key index n inside a window is (n // window, n % window). Rows of padding queries are 0 (their
    outputs are cropped, so they are not computed); padding keys are real keys with their weights.
    A token at window (wr, wc), offset (r, c) sits at grid position
    ((wr * window + r + shift) % Hp, (wc * window + c + shift) % Wp); rows >= H or cols >= W are zero padding.
    Grid cell (row, col) covers image pixels [row * stride, (row + 1) * stride) x [col * stride, ...).
    """

    stage: int
    block: int
    weights: torch.Tensor
    window: int
    shift: int
    grid_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    pad: tuple[int, int]  # (bottom, right) zero rows/cols added to the grid
    stride_px: int  # image pixels per grid cell at this stage

    def token_grid_positions(self) -> torch.Tensor:
        """(nW, N, 2) long: (row, col) in the original grid of every window token; -1 marks padding."""
        H, W = self.grid_hw
        tokens = window_tokens(H, W, self.window, self.shift)
        positions = torch.stack([tokens // W, tokens % W], dim=-1)
        return positions.masked_fill(tokens[..., None] < 0, -1)

    def query_map(self, batch: int, row: int, col: int) -> torch.Tensor:
        """(heads, H, W): the attention of the query token at grid (row, col) over the original grid.

        Keys outside the query's window are 0; the mass given to padding keys is dropped, so a row can
        sum to less than 1 near the bottom/right border.
        """
        H, W = self.grid_hw
        if not (0 <= row < H and 0 <= col < W):
            raise ValueError(f"query ({row}, {col}) is outside the {H}x{W} grid of stage {self.stage}")
        positions = self.token_grid_positions()
        where = ((positions[..., 0] == row) & (positions[..., 1] == col)).nonzero()
        window_idx, query_idx = where[0].tolist()
        weights = self.weights[batch, window_idx, :, query_idx]  # (heads, N)
        keys = positions[window_idx]  # (N, 2)
        valid = keys[:, 0] >= 0
        out = weights.new_zeros(weights.shape[0], H, W)
        out[:, keys[valid, 0], keys[valid, 1]] = weights[:, valid]
        return out


# ---------------------------------------------------------------------------------------------------
# Block


class SwinBlock(nn.Module):
    """Pre-norm block: x + W-MSA(LN(x)) (windows shifted by `shift` when > 0), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float,
                 drop_path: float, leff: bool, norm_eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = WindowAttention(dim, num_heads, window, shift)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = LeFFMlp(dim, int(dim * mlp_ratio), local=leff)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# ---------------------------------------------------------------------------------------------------
# Patch merging and stages


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> LayerNorm(4C) -> Linear(4C, 2C, no bias), 4C ordered channel-major (nn.Unfold)."""

    def __init__(self, dim: int, norm_eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C); odd sizes get a zero row/column bottom/right."""
        B, H, W, C = x.shape
        if H % 2 or W % 2:  # (F.pad copies even when it pads nothing)
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        H2, W2 = (H + 1) // 2, (W + 1) // 2
        x = x.view(B, H2, 2, W2, 2, C).permute(0, 1, 3, 5, 2, 4)  # (B, H2, W2, C, dy, dx)
        return self.reduction(self.norm(x.reshape(B, H2, W2, 4 * C)))


class Stage(nn.Module):
    """`depth` blocks (odd ones shifted by window // 2), then an optional merge (stages 0..n-2)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float,
                 drop_paths: Sequence[float], leff: bool, merge: bool, norm_eps: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, shift=window // 2 if i % 2 else 0, mlp_ratio=mlp_ratio,
                      drop_path=drop_paths[i], leff=leff, norm_eps=norm_eps)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, norm_eps) if merge else None
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C): the blocks only, before the merge."""
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_blocks(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    """Image -> (B, H/p, W/p, C) tokens: zero-pad bottom/right to a multiple of p, conv p x p, LayerNorm."""

    def __init__(self, patch_size: int, dim: int, norm_eps: float):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        H, W = images.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            images = F.pad(images, (0, (-W) % self.patch_size, 0, (-H) % self.patch_size))
        return self.norm(self.proj(images).permute(0, 2, 3, 1))


# ---------------------------------------------------------------------------------------------------
# The network


class LewinViT(nn.Module):
    """Patch embedding (+ SIE camera embedding) -> stages; returns the last stage's tokens, no final norm.

    Args:
        shape: widths/depths, see LEWINVIT_SHAPES.
        num_cameras: rows of the camera table; 0 switches the camera embedding off.
        sie_coef: x <- x + sie_coef * E[cam] after the patch embedding (train and test).
        drop_path: stochastic depth, 0 at the first block rising linearly to this at the last.
        leff_stages: per stage, whether its MLPs get the zero-initialised depthwise conv.
    """

    def __init__(self, shape: LewinViTShape, num_cameras: int = 0, sie_coef: float = 3.0,
                 drop_path: float = 0.0, leff_stages: Sequence[bool] = (False, False, False, False)):
        super().__init__()
        if len(leff_stages) != shape.num_stages:
            raise ValueError(f"leff_stages needs {shape.num_stages} flags, got {tuple(leff_stages)}")
        if num_cameras < 0:
            raise ValueError(f"num_cameras must be >= 0, got {num_cameras}")
        self.shape = shape
        self.sie_coef = sie_coef
        self.patch_embed = PatchEmbed(shape.patch_size, shape.embed_dim, shape.norm_eps)
        self.camera_embed = None
        if num_cameras > 0:
            self.camera_embed = nn.Parameter(torch.zeros(num_cameras, 1, shape.embed_dim))
            trunc_normal_(self.camera_embed, std=0.02)
        total = sum(shape.depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]  # 0 -> drop_path, linearly
        starts = [sum(shape.depths[:i]) for i in range(shape.num_stages)]
        self.stages = nn.ModuleList(
            Stage(shape.stage_dim(i), depth, shape.num_heads[i], shape.window_size, shape.mlp_ratio,
                  drop_paths=rates[starts[i]:starts[i] + depth], leff=bool(leff_stages[i]),
                  merge=i < shape.num_stages - 1, norm_eps=shape.norm_eps)
            for i, depth in enumerate(shape.depths)
        )
        self.apply(_init_weights)

    pretrained_family = "swin"  # checkpoint layouts it loads, see pretrained.py

    def backbone_targets(self, key: str) -> list[str]:
        """Where a (converted) backbone checkpoint key goes: its own name."""
        return [key]

    @property
    def num_cameras(self) -> int:
        return 0 if self.camera_embed is None else self.camera_embed.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.shape.out_dim

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enabled

    def embed(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, 3, H, W), camids (B,) 0-based -> (B, ceil(H/4), ceil(W/4), C) stage-0 input."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = self.patch_embed(images)
        if self.camera_embed is None:
            return x
        if camids is None:
            raise ValueError(f"this model has a camera embedding for {self.num_cameras} cameras: pass camids (B,)")
        camids = torch.as_tensor(camids, device=x.device).long().view(-1)
        if camids.shape[0] != x.shape[0]:
            raise ValueError(f"camids has {camids.shape[0]} entries for a batch of {x.shape[0]} images")
        if camids.numel() and (int(camids.min()) < 0 or int(camids.max()) >= self.num_cameras):
            raise ValueError(f"camera ids must be in [0, {self.num_cameras}), got {camids.tolist()}")
        return x + self.sie_coef * self.camera_embed[camids].unsqueeze(1)  # (B, 1, 1, C) over the grid

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, 3, H, W), camids (B,) -> last-stage tokens (B, H/32, W/32, C_out) (rounded up)."""
        x = self.embed(images, camids)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_intermediates(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every stage's block output BEFORE its merge: [(B, H_i, W_i, C_i)] for i = 0..num_stages-1."""
        x = self.embed(images, camids)
        outs = []
        for stage in self.stages:
            x = stage.forward_blocks(x)
            outs.append(x)
            if stage.downsample is not None:
                x = stage.downsample(x)
        return outs

    def forward_with_attention(self, images: torch.Tensor, camids: torch.Tensor | None,
                               blocks: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, list[AttentionMap]]:
        """forward() plus the attention weights of the chosen (stage, block) pairs, in the order asked."""
        return capture_attention(self.stages, lambda: self(images, camids), blocks, self.shape.patch_size)


def capture_attention(stages: Sequence[Stage], run: Callable[[], Any], blocks: Sequence[tuple[int, int]],
                      patch_size: int) -> tuple[Any, list[AttentionMap]]:
    """Switch capture on for `blocks` of `stages`, call run(), and return (its output, [AttentionMap])."""
    chosen = []
    for stage_idx, block_idx in blocks:
        if not (0 <= stage_idx < len(stages) and 0 <= block_idx < len(stages[stage_idx].blocks)):
            depths = [len(s.blocks) for s in stages]
            raise ValueError(f"no block ({stage_idx}, {block_idx}); stage depths are {depths}")
        chosen.append((stage_idx, block_idx, stages[stage_idx].blocks[block_idx].attn))
    try:
        for *_, attn in chosen:
            attn.capture = True
        out = run()
        maps = []
        for stage_idx, block_idx, attn in chosen:
            weights, grid_hw, padded_hw = attn.captured
            maps.append(AttentionMap(
                stage=stage_idx, block=block_idx, weights=weights, window=attn.window, shift=attn.shift,
                grid_hw=grid_hw, padded_hw=padded_hw,
                pad=(padded_hw[0] - grid_hw[0], padded_hw[1] - grid_hw[1]),
                stride_px=patch_size * 2**stage_idx,
            ))
        return out, maps
    finally:
        for *_, attn in chosen:
            attn.capture = False
            attn.captured = None


def _init_weights(m: nn.Module) -> None:
    """Swin's init: trunc-normal 0.02 linears, unit LayerNorms (LeFF convs keep their zero init)."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_lewinvit(name: str, **kwargs) -> LewinViT:
    """LewinViT of a registered shape, e.g. build_lewinvit("lewinvit_small", num_cameras=6)."""
    if name not in LEWINVIT_SHAPES:
        raise ValueError(f"unknown LewinViT shape {name!r}; known: {', '.join(LEWINVIT_SHAPES)}")
    return LewinViT(LEWINVIT_SHAPES[name], **kwargs)

