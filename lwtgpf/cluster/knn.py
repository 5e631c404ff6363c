"""Exact k nearest neighbours: the rank(i) lists of SPEC section 4.

The contract, the same for every backend and search precision:

    rank[i, 0] = i, then the k - 1 other points nearest to i by squared Euclidean distance,
    nearest first; equal distances are ordered by the smaller index first.

"Distance" here is decided in float64: d(i, j) = |x_i|^2 + |x_j|^2 - 2 x_i.x_j with x_i.x_j the
float64 sum of the (exactly representable) float64 products of the float32 features. Two distances
are "equal" when these float64 values are equal, which in practice means duplicated points; the
dense reference in tests/test_knn.py uses the same arithmetic.

How the lists stay exact while the search runs in cheap precision (bf16 matmul, or faiss fp32):
a backend returns, per query, its `width` best candidates by an approximate distance whose error is
at most `bound[i]` (a worst-case rounding bound: each backend's `bound`). The true k
nearest all have approximate distance <= (k-th smallest approximate distance) + 2 * bound[i]
(proof in `_finish_rows`). If the width-th candidate lies beyond that window, the window - hence
every true neighbour - is among the candidates; the window members are re-scored in float64 and
sorted; otherwise that row is searched again with a four times wider candidate list (up to all N points).

Backends ("auto" picks one):
- "torch": blocked matmul + top-k on the features' device (CPU or CUDA); bf16 when that is faster
  than fp32 on the device (probed once), else fp32.
- "faiss": faiss IndexFlatL2 in fp32, on the GPU when faiss sees one (faiss is an optional import).
- "auto": CUDA tensors -> faiss if it has GPUs, else torch; CPU -> torch if bf16 is fast here,
  else faiss if installed, else torch fp32.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "faiss")
SCORE_BUDGET = 1 << 26  # elements of a (rows x N) approximate score block held at once
SYMMETRIC_BLOCK = 8192  # rows of the square score blocks of the torch backend's first pass
ROWS_PER_BLOCK = 4096  # query rows finished (windows checked, re-scored) at once
RESCORE_BUDGET = 1 << 23  # float64 elements gathered at once when re-scoring candidates
FAISS_GPU_MAX_K = 2048
BF16_UNIT_ROUNDOFF = 2.0**-8  # bf16 keeps 8 significant bits
FP32_UNIT_ROUNDOFF = 2.0**-24


@dataclass
class Neighbours:
    """indices (N, k) int64 and their squared Euclidean distances (N, k) float64, same device as the
    features; indices[i, 0] == i. k = min(requested k, N)."""

    indices: torch.Tensor
    sqdist: torch.Tensor


def nearest_neighbours(features: torch.Tensor | np.ndarray, k: int, backend: str = "auto") -> Neighbours:
    """Exact k nearest neighbours of every row of `features` (N, D) among all rows, itself first."""
    x = _as_features(features)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown kNN backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    n = x.shape[0]
    k = min(int(k), n)
    started = time.perf_counter()
    sqnorm = _float64_sqnorm(x)  # (N,)
    search = _pick_search(backend, x, sqnorm)
    approx, cand = search.all_rows(x, min(n, k + max(8, k)))  # (N, width) candidates of every row
    indices = torch.empty((n, k), dtype=torch.long, device=x.device)
    sqdist = torch.empty((n, k), dtype=torch.float64, device=x.device)
    for start in range(0, n, ROWS_PER_BLOCK):
        rows = torch.arange(start, min(start + ROWS_PER_BLOCK, n), device=x.device)
        indices[rows], sqdist[rows] = _finish_rows(x, sqnorm, rows, approx[rows], cand[rows], k, search)
    log.debug("kNN (%s): N=%d k=%d in %.2fs", search.name, n, k, time.perf_counter() - started)
    return Neighbours(indices, sqdist)


def _as_features(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) matrix, got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float32).contiguous()
    if not torch.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    return x


# --------------------------------------------------------------------------- the exact driver
def _finish_rows(x, sqnorm, rows, approx, cand, k, search) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (indices, sqdist) (R, k) for the query rows `rows` (R,) from their first candidates
    (R, width), ascending approximate distances; rows whose window overflows are searched again.

    Why the window is enough: let a_j be the approximate and d_j the exact distance from query i,
    |a_j - d_j| <= b, and t the k-th smallest a. The k candidates with a <= t have d <= t + b, so the
    k-th smallest exact distance is <= t + b, and every true neighbour j has a_j <= d_j + b <= t + 2b.
    """
    n = x.shape[0]
    out_idx = torch.empty((len(rows), k), dtype=torch.long, device=x.device)
    out_d = torch.empty((len(rows), k), dtype=torch.float64, device=x.device)
    todo = torch.arange(len(rows), device=x.device)
    while True:
        queries, width = rows[todo], cand.shape[1]
        limit = approx[:, k - 1] + 2 * search.bound(queries)
        complete = (approx[:, -1] > limit) if width < n else torch.ones_like(limit, dtype=torch.bool)
        in_window = approx[complete] <= limit[complete, None]
        done = todo[complete]
        out_idx[done], out_d[done] = _exact_top_k(x, sqnorm, queries[complete], cand[complete], in_window, k)
        todo = todo[~complete]
        if len(todo) == 0:
            return out_idx, out_d
        approx, cand = search(x, rows[todo], min(n, 4 * width))


def _exact_top_k(x, sqnorm, queries, cand, in_window, k) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest among the windowed candidates (R, W): self first, then float64 distance, ties
    by index. Only window members (a prefix of each row: candidates come sorted by approximate
    distance) are re-scored, in float64; the rest sort last."""
    dots = _prefix_dots(x, queries, cand, in_window.sum(dim=1))
    dist = (sqnorm[queries, None] + sqnorm[cand] - 2 * dots).clamp_(min=0).masked_fill_(~in_window, float("inf"))
    key = dist.masked_fill(cand == queries[:, None], float("-inf"))  # i itself first, always
    by_index = torch.argsort(cand, dim=1)
    order = torch.gather(by_index, 1, torch.argsort(torch.gather(key, 1, by_index), dim=1, stable=True))
    top = order[:, :k]
    top_d = torch.gather(dist, 1, top)
    top_d[:, 0] = 0.0  # d(i, i) = 0 exactly; the formula leaves a rounding residue
    return torch.gather(cand, 1, top), top_d


def _prefix_dots(x, queries, cand, lengths) -> torch.Tensor:
    """(R, W) float64 x[queries[r]] . x[cand[r, w]] for w < lengths[r] (0 beyond), in row blocks
    padded to their longest prefix, so each query row is read once per block."""
    dots = torch.zeros(cand.shape, dtype=torch.float64, device=x.device)
    rows_per_step = 256
    for s in range(0, len(queries), rows_per_step):
        width = int(lengths[s : s + rows_per_step].max())
        q, c = queries[s : s + rows_per_step], cand[s : s + rows_per_step, :width]
        if x.device.type == "cpu":  # numpy: see pair_dots
            xs = x.numpy()
            block = torch.from_numpy(np.einsum("rd,rwd->rw", xs[q.numpy()], xs[c.numpy()], dtype=np.float64))
        else:
            block = torch.einsum("rd,rwd->rw", x[q].double(), x[c].double())
        dots[s : s + rows_per_step, :width] = block
    return dots


def pair_dots(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(P,) float64 x[rows[p]] . x[cols[p]]: float64 products (exact for float32 inputs), float64 sums.

    On the CPU this runs in numpy, whose gathers reuse memory (torch allocates and page-faults
    fresh buffers for every block, several times slower here); on CUDA in torch.
    """
    out = torch.empty(len(rows), dtype=torch.float64, device=x.device)
    step = max(1, RESCORE_BUDGET // x.shape[1])
    if x.device.type == "cpu":
        xs, rs, cs, os_ = x.numpy(), rows.numpy(), cols.numpy(), out.numpy()
        for s in range(0, len(rs), step):
            os_[s : s + step] = np.einsum("pd,pd->p", xs[rs[s : s + step]], xs[cs[s : s + step]], dtype=np.float64)
    else:
        for s in range(0, len(rows), step):
            out[s : s + step] = (x[rows[s : s + step]].double() * x[cols[s : s + step]].double()).sum(dim=1)
    return out


def _float64_sqnorm(x: torch.Tensor) -> torch.Tensor:
    """(N,) |x_i|^2 in float64."""
    idx = torch.arange(x.shape[0], device=x.device)
    return pair_dots(x, idx, idx)


def _rounding_error_norms(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N,) float64 |round(x_i) - x_i| when x is rounded to `dtype` (a shorter float: the residue
    x - round(x) is exact in float32)."""
    residue = x - x.to(dtype).float()
    idx = torch.arange(x.shape[0], device=x.device)
    return pair_dots(residue, idx, idx).sqrt()


# --------------------------------------------------------------------------- backends
class _TorchSearch:
    """Chunked matmul + top-k: approximate distance a_ij = |x_i|^2 + mean_j |x_j|^2 - 2 x~_i.x~_j."""

    def __init__(self, x: torch.Tensor, sqnorm: torch.Tensor):
        self.dtype = torch.bfloat16 if _bf16_is_faster(x.device.type) else torch.float32
        self.name = f"torch-{'bf16' if self.dtype == torch.bfloat16 else 'fp32'}"
        self.base = x.to(self.dtype)
        self.sqnorm = sqnorm
        self.mean_sqnorm = float(sqnorm.mean())
        self.norm = sqnorm.sqrt()
        self.spread = float(sqnorm.max() - sqnorm.min())  # error of using the mean |x_j|^2
        if self.dtype == torch.bfloat16:
            self.rounding = _rounding_error_norms(x, self.dtype)  # (N,) |x~_i - x_i|
            self.rounded_norm = self.norm + self.rounding  # >= |x~_i|

    def __call__(self, x, queries, width):
        """Candidates of some rows: their (R, N) score rows in blocks, top `width` of each."""
        approx, cand = [], []
        step = max(1, SCORE_BUDGET // x.shape[0])
        for s in range(0, len(queries), step):
            with _full_precision_reduction():
                scores = self.base[queries[s : s + step]] @ self.base.T  # (R, N) in self.dtype
            best, idx = scores.topk(width, dim=1)
            approx.append(self._approx(queries[s : s + step], best))
            cand.append(idx)
        return torch.cat(approx), torch.cat(cand)

    def all_rows(self, x, width):
        """Candidates of every row. The score matrix is symmetric: each square block (I, J), J >= I,
        is computed once and serves rows I (its rows) and rows J (its columns); the running top
        `width` of every row is merged block by block. Close to half the matmul of a row-wise pass."""
        n = x.shape[0]
        best = torch.full((n, width), float("-inf"), dtype=torch.float32, device=x.device)
        best_idx = torch.zeros((n, width), dtype=torch.long, device=x.device)
        starts = range(0, n, SYMMETRIC_BLOCK)
        for i in starts:
            rows_i = slice(i, min(i + SYMMETRIC_BLOCK, n))
            for j in (s for s in starts if s >= i):
                rows_j = slice(j, min(j + SYMMETRIC_BLOCK, n))
                with _full_precision_reduction():
                    scores = self.base[rows_i] @ self.base[rows_j].T  # (I, J)
                _merge_top(best, best_idx, rows_i, scores, j)
                if j != i:
                    _merge_top(best, best_idx, rows_j, scores.T.contiguous(), i)
        return self._approx(torch.arange(n, device=x.device), best), best_idx

    def _approx(self, queries, best_scores):
        return self.sqnorm[queries, None] + self.mean_sqnorm - 2 * best_scores.double()

    def bound(self, queries) -> torch.Tensor:
        """(R,) bound on |a_ij - d_ij| over all j, in squared-distance units.

        bf16 (inputs rounded to bf16, exact bf16 products summed in fp32, result rounded to bf16):
          |x~_i.x~_j - x_i.x_j| <= |x~_i| e_j + e_i |x_j|              (e = |x~ - x|, measured)
          fp32 sum of D products  <= D u32 |x~_i| |x~_j|,  bf16 output <= u |x~_i| |x~_j| (1 + D u32)
        fp32: D u32 |x_i| |x_j| for the sum. The distance doubles the score error and adds the
        |x_j|^2 spread; 1.05 covers the float64 bookkeeping.
        """
        if self.dtype == torch.bfloat16:
            u, du32 = BF16_UNIT_ROUNDOFF, _fp32_sum_error(self.base.shape[1])
            rn = self.rounded_norm
            score = rn[queries] * self.rounding.max() + self.rounding[queries] * self.norm.max()
            score = score + (u + 2 * du32) * rn[queries] * rn.max()
        else:
            score = _fp32_sum_error(self.base.shape[1]) * self.norm[queries] * self.norm.max()
        return 1.05 * (2 * score + self.spread)


class _FaissSearch:
    """faiss IndexFlatL2 (fp32), moved to the GPU when faiss sees one."""

    def __init__(self, x: torch.Tensor, sqnorm: torch.Tensor):
        import faiss  # optional dependency

        self.base = x.cpu().numpy()
        self.norm = sqnorm.sqrt()
        self.cpu_index = faiss.IndexFlatL2(x.shape[1])
        self.cpu_index.add(self.base)
        self.gpu_index = faiss.index_cpu_to_all_gpus(self.cpu_index) if faiss.get_num_gpus() > 0 else None
        self.name = "faiss-gpu" if self.gpu_index is not None else "faiss-cpu"
        self.dim_u32 = _fp32_sum_error(x.shape[1] + 4)

    def all_rows(self, x, width):
        return self(x, torch.arange(x.shape[0], device=x.device), width)

    def __call__(self, x, queries, width):
        # faiss GPU indexes return at most 2048 neighbours; wider retries use the CPU index.
        index = self.gpu_index if self.gpu_index is not None and width <= FAISS_GPU_MAX_K else self.cpu_index
        approx, cand = index.search(self.base[queries.cpu().numpy()], width)
        return (torch.from_numpy(approx).to(x.device, torch.float64),
                torch.from_numpy(cand).to(x.device, torch.long))

    def bound(self, queries) -> torch.Tensor:
        """(R,) faiss computes |x|^2 + |y|^2 - 2 x.y (or sum (x - y)^2) in fp32: each of the D-term
        sums is off by at most (D + 4) u32 times its terms' magnitude, <= (|x_i| + |x_j|)^2 in all;
        doubled for safety across faiss's code paths."""
        return 2 * self.dim_u32 * (self.norm[queries] + self.norm.max()) ** 2


def _merge_top(best, best_idx, rows: slice, scores, column_offset: int) -> None:
    """best/best_idx[rows] (R, W) <- the W largest of themselves and of scores (R, C) (descending)."""
    values, idx = scores.topk(min(best.shape[1], scores.shape[1]), dim=1)
    merged, pick = torch.cat([best[rows], values.float()], dim=1).topk(best.shape[1], dim=1)
    best[rows] = merged
    best_idx[rows] = torch.gather(torch.cat([best_idx[rows], idx + column_offset], dim=1), 1, pick)


def _fp32_sum_error(dim: int) -> float:
    """D u32: relative error bound of an fp32 sum of D terms, in any order (of their magnitudes)."""
    return dim * FP32_UNIT_ROUNDOFF


def _pick_search(backend: str, x: torch.Tensor, sqnorm: torch.Tensor):
    if backend == "faiss" or (backend == "auto" and _auto_prefers_faiss(x.device.type)):
        if not _faiss_available():
            raise ImportError("kNN backend 'faiss' needs the faiss package (pip install faiss-cpu or faiss-gpu)")
        return _FaissSearch(x, sqnorm)
    return _TorchSearch(x, sqnorm)


def _auto_prefers_faiss(device_type: str) -> bool:
    if not _faiss_available():
        return False
    if device_type == "cuda":
        import faiss

        return faiss.get_num_gpus() > 0
    return not _bf16_is_faster("cpu")


@functools.lru_cache(maxsize=None)
def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _bf16_is_faster(device_type: str) -> bool:
    """Probe once per device type: is a bf16 matmul clearly faster than fp32 here?

    CUDA GPUs with bf16 support always are; CPUs are when they have native bf16 instructions
    (AVX512-BF16 / AMX); elsewhere bf16 is emulated and several times slower.
    """
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    gen = torch.Generator().manual_seed(0)  # never touch the global RNG
    a = torch.randn(256, 768, generator=gen)
    b = torch.randn(2048, 768, generator=gen)

    def best_of(fn) -> float:
        fn()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    fp32 = best_of(lambda: a @ b.T)
    a16, b16 = a.bfloat16(), b.bfloat16()
    bf16 = best_of(lambda: a16 @ b16.T)
    log.debug("matmul probe: fp32 %.2f ms, bf16 %.2f ms", 1e3 * fp32, 1e3 * bf16)
    return bf16 < 0.8 * fp32


class _full_precision_reduction:
    """On CUDA, make bf16 matmuls accumulate in fp32 (the error bound assumes it)."""

    def __enter__(self):
        self.saved = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = self.saved
