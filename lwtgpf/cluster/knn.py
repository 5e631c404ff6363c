"""Exact k nearest neighbours: the rank(i) lists of SPEC section 4.

The contract, the same for every backend and search precision:

    rank[i, 0] = i, then the k - 1 other points nearest to i by squared Euclidean distance,
    nearest first; equal distances are ordered by the smaller index first.

"Distance" here is decided in float64: d(i, j) = |x_i|^2 + |x_j|^2 - 2 x_i.x_j with x_i.x_j the
float64 sum of the (exactly representable) float64 products of the float32 features. Two distances
are "equal" when these float64 values are equal, which in practice means duplicated points; the
dense reference in tests/test_knn.py uses the same arithmetic.

How the lists stay exact while the search runs in cheap precision (bf16 matmul, or faiss fp32):
a backend gives every query a *pool* of candidates with approximate keys a (smaller = nearer) and a
ceiling: every point with a < ceiling is in the pool. From the k-th smallest key in the pool, the
backend's `window_limit` derives a limit A that every true neighbour's key satisfies (a <= A; from a
worst-case rounding bound, proofs at each `window_limit`). If A < ceiling, this window - hence every
true neighbour - is in the pool: its members are re-scored in float64 and sorted. Otherwise the query
is searched again with a top-k list four times wider (up to all N points).

The torch backend builds the pools of all rows in one pass over the score matrix (x x^T, symmetric:
each square block is computed once and serves its rows and its columns). Instead of a top-k per
block it keeps, per query, the running maximum of Q disjoint groups of its scores: the W-th largest
of these Q maxima is at most the W-th largest score, so every score at or above it belongs in the
pool, and one vectorised comparison per block finds those entries. (A top-k over every block, and the
transposed copy the column side needs, cost more than half the matmul itself on a CPU.)

Backends ("auto" picks one):
- "torch": blocked matmul on the features' device (CPU or CUDA); bf16 when that is faster than fp32
  on the device (probed once), else fp32.
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
SCORE_BUDGET = 1 << 26  # elements of a (rows x N) score block of a top-k search held at once
# Rows of the square score blocks of the pass over all rows. 4096 computes ~5% fewer flops at 32k,
# but 8192 takes 4x fewer small steps, each a parallel region, and is the faster one when the cores
# are shared with other work (measured at 2 threads on a loaded 2-core CPU).
SYMMETRIC_BLOCK = 8192
COARSE_GROUPS = 64  # Q: groups of each query's scores whose running maxima bound its W-th best score
OVERFLOW_FACTOR = 8  # cap on a block's pool entries per query, in units of W (see _ThresholdScan)
WINDOW_ROWS = 4096  # queries re-scored at once, padded to their longest window
RESCORE_BUDGET = 1 << 23  # feature elements gathered at once when re-scoring in float64
FAISS_GPU_MAX_K = 2048
BF16_UNIT_ROUNDOFF = 2.0**-8  # bf16 keeps 8 significant bits
FP32_UNIT_ROUNDOFF = 2.0**-24
# Added to every window: covers the float64 arithmetic of the bounds themselves (relative, ~1e-16 per
# operation) and scores flushed to zero when they fall below the smallest normal float (absolute).
RELATIVE_SLACK = 2.0**-30
ABSOLUTE_SLACK = 2.0**-100


@dataclass
class Neighbours:
    """indices (N, k) int64 and their squared Euclidean distances (N, k) float64, same device as the
    features; indices[i, 0] == i. k = min(requested k, N)."""

    indices: torch.Tensor
    sqdist: torch.Tensor


def nearest_neighbours(
    features: torch.Tensor | np.ndarray, k: int, backend: str = "auto", block_observer=None
) -> Neighbours:
    """Exact k nearest neighbours of every row of `features` (N, D) among all rows, itself first.

    block_observer (torch backend only): called as block_observer(scores (I, J), rows_i, rows_j, error)
    with every square block of the score matrix x x^T the search computes (rows_i, rows_j slices,
    rows_j.start >= rows_i.start: each unordered pair of rows once), in the search's precision, and
    error (N,) float64 bounding |fp32 sum - x_i.x_j| per row i before the scores' final rounding to
    their dtype. Lets another statistic of all pairs ride on the same pass (test-time re-ranking takes
    the farthest crop of each row from it).
    """
    x = _as_features(features)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown kNN backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if block_observer is not None and backend != "torch":
        raise ValueError("block_observer needs backend='torch' (the only backend that computes score blocks)")
    n = x.shape[0]
    k = min(int(k), n)
    started = time.perf_counter()
    sqnorm = float64_sqnorm(x)  # (N,)
    search = _pick_search(backend, x, sqnorm)
    indices = torch.empty((n, k), dtype=torch.long, device=x.device)
    sqdist = torch.empty((n, k), dtype=torch.float64, device=x.device)
    width = min(n, k + max(8, k))
    pool = search.all_rows(x, width, block_observer)
    searched_again = 0
    while True:
        todo = _finish(x, sqnorm, pool, k, search, indices, sqdist)  # queries whose window overflowed
        if len(todo) == 0:
            break
        searched_again += len(todo)
        width = min(n, 4 * width)
        pool = search.rows(x, todo, width)
    log.debug("kNN (%s): N=%d k=%d in %.2fs, %d queries searched again", search.name, n, k,
              time.perf_counter() - started, searched_again)
    return Neighbours(indices, sqdist)


def _as_features(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) matrix, got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float32).contiguous()
    if not (torch.isfinite(x.sum()) or torch.isfinite(x).all()):  # a finite sum proves it in one cheap pass
        raise ValueError("features contain NaN or infinite values")
    return x


# --------------------------------------------------------------------------- the exact driver
@dataclass
class _Pool:
    """Candidates of R queries in compressed rows, as a backend hands them over.

    queries (R,); offsets (R + 1,): query r's candidates are cols[offsets[r]:offsets[r + 1]], with their
    approximate keys approx (float64, ascending within each query); ceiling (R,) float64: every point
    whose key is below ceiling[r] is among query r's candidates (+inf: all points are).
    """

    queries: torch.Tensor
    offsets: torch.Tensor
    cols: torch.Tensor
    approx: torch.Tensor
    ceiling: torch.Tensor

    @classmethod
    def from_top(cls, queries: torch.Tensor, approx: torch.Tensor, cols: torch.Tensor, n: int) -> "_Pool":
        """From each query's w nearest by key (R, w), ascending: everything nearer than the w-th is in."""
        r, w = approx.shape
        ceiling = approx[:, -1] if w < n else torch.full((r,), float("inf"), dtype=torch.float64, device=approx.device)
        offsets = torch.arange(r + 1, device=cols.device) * w
        return cls(queries, offsets, cols.reshape(-1), approx.reshape(-1), ceiling)


def _finish(x, sqnorm, pool: _Pool, k: int, search, out_idx, out_d) -> torch.Tensor:
    """Write the exact lists (out_idx/out_d rows) of the pool's queries whose window lies inside the
    pool; return the other queries."""
    counts = pool.offsets.diff()
    if len(pool.cols) == 0:
        return pool.queries
    starts = pool.offsets[:-1]
    kth = pool.approx[(starts + k - 1).clamp(max=len(pool.approx) - 1)]  # k-th smallest key of each query
    limit = search.window_limit(kth, pool.queries)
    complete = (counts >= k) & (limit < pool.ceiling)
    entry_query = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    in_window = (pool.approx <= limit[entry_query]).long()
    lengths = torch.zeros_like(counts).index_add_(0, entry_query, in_window)  # a prefix of each query's list
    done = complete.nonzero().squeeze(1)
    done = done[torch.argsort(lengths[done], stable=True)]  # similar lengths share a padded block
    for s in range(0, len(done), WINDOW_ROWS):
        rows = done[s : s + WINDOW_ROWS]
        queries = pool.queries[rows]
        out_idx[queries], out_d[queries] = _exact_top_k(x, sqnorm, queries, pool, starts[rows], lengths[rows], k)
    return pool.queries[~complete]


def _exact_top_k(x, sqnorm, queries, pool: _Pool, starts, lengths, k) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest (R, k) among each query's window, pool.cols[starts[r] : starts[r] + lengths[r]]:
    self first, then float64 distance, ties by index."""
    width = int(lengths.max())
    position = torch.arange(width, device=x.device)
    valid = position < lengths[:, None]  # (R, W)
    cand = torch.where(valid, pool.cols[(starts[:, None] + position).clamp(max=len(pool.cols) - 1)], queries[:, None])
    dist = (sqnorm[queries, None] + sqnorm[cand] - 2 * _window_dots(x, queries, cand)).clamp_(min=0)
    dist.masked_fill_(~valid, float("inf"))
    key = dist.masked_fill(valid & (cand == queries[:, None]), float("-inf"))  # i itself first, always
    by_index = torch.argsort(cand, dim=1)
    order = torch.gather(by_index, 1, torch.argsort(torch.gather(key, 1, by_index), dim=1, stable=True))
    top = order[:, :k]
    top_d = torch.gather(dist, 1, top)
    top_d[:, 0] = 0.0  # d(i, i) = 0 exactly; the formula leaves a rounding residue
    return torch.gather(cand, 1, top), top_d


def _window_dots(x, queries, cand) -> torch.Tensor:
    """(R, W) float64 x[queries[r]] . x[cand[r, w]], each query row read once, in row steps that keep
    the gathered (rows, W, D) block near RESCORE_BUDGET elements."""
    out = torch.empty(cand.shape, dtype=torch.float64, device=x.device)
    step = max(1, RESCORE_BUDGET // (cand.shape[1] * x.shape[1]))
    if x.device.type == "cpu":  # numpy: see pair_dots
        xs, qs, cs, os_ = x.numpy(), queries.numpy(), cand.numpy(), out.numpy()
        for s in range(0, len(qs), step):
            os_[s : s + step] = np.einsum("rd,rwd->rw", xs[qs[s : s + step]], xs[cs[s : s + step]], dtype=np.float64)
    else:
        for s in range(0, len(queries), step):
            rows, cols = x[queries[s : s + step]].double(), x[cand[s : s + step]].double()
            out[s : s + step] = torch.einsum("rd,rwd->rw", rows, cols)
    return out


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


def float64_sqnorm(x: torch.Tensor) -> torch.Tensor:
    """(N,) |x_i|^2 in float64 (the products and sums of pair_dots)."""
    if x.device.type == "cpu":
        xs = x.numpy()
        return torch.from_numpy(np.einsum("nd,nd->n", xs, xs, dtype=np.float64))
    return x.double().square().sum(dim=1)


def _rounding_error_norms(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """(N,) float64 |rounded_i - x_i| for x (N, D) float32 rounded to a shorter float (the residue is
    exact in float32), in row blocks: small temporaries."""
    step = max(1, SCORE_BUDGET // (8 * x.shape[1]))
    blocks = [float64_sqnorm(x[s : s + step] - rounded[s : s + step].float()) for s in range(0, len(x), step)]
    return torch.cat(blocks).sqrt()


# --------------------------------------------------------------------------- backends
class _TorchSearch:
    """Blocked matmul scores s~_ij ~ x_i.x_j in bf16 or fp32; the key of a candidate is a = -s~."""

    def __init__(self, x: torch.Tensor, sqnorm: torch.Tensor):
        self.dtype = torch.bfloat16 if _bf16_is_faster(x.device.type) else torch.float32
        self.name = f"torch-{'bf16' if self.dtype == torch.bfloat16 else 'fp32'}"
        self.base = x.to(self.dtype)
        self.spread = float(sqnorm.max() - sqnorm.min())
        self.error = self._score_error(x, sqnorm.sqrt())  # (N,)

    def _score_error(self, x: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """(N,) beta_i >= |s'_ij - x_i.x_j| for all j, s' the fp32 sum the matmul accumulates.

        bf16: inputs rounded to bf16 (e = |x~ - x|, measured), exact products summed in fp32:
          |x~_i.x~_j - x_i.x_j| <= |x~_i| e_j + e_i |x_j|,   fp32 sum of D terms <= D u32 |x~_i| |x~_j|
        (then rounded once more to bf16: see `window_limit`). fp32: the sum's D u32 |x_i| |x_j| (products
        rounded or fused). The sum term is doubled and all is scaled by 1.05 for safety.
        """
        sum_error = 2 * _fp32_sum_error(x.shape[1])
        if self.dtype == torch.bfloat16:
            rounding = _rounding_error_norms(x, self.base)
            rounded_norm = norm + rounding  # >= |x~_i|
            error = rounded_norm * rounding.max() + rounding * norm.max()
            error = error + sum_error * rounded_norm * rounded_norm.max()
        else:
            error = sum_error * norm * norm.max()
        return 1.05 * error

    def window_limit(self, kth: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(R,) key limit of the true neighbours of `queries`, from the k-th smallest key of each.

        Let s'_ij be the fp32 sum, |s'_ij - s_ij| <= b = beta_i, and rank by e_ij = s_ij - |x_j|^2 / 2
        (d_ij = |x_i|^2 - 2 e_ij). The k candidates with the largest s' (>= t', the k-th largest s')
        have e >= t' - b - max|x|^2 / 2, so every true neighbour j has e_ij >= that too, and
        s'_ij >= e_ij + |x_j|^2 / 2 - b >= t' - 2b - spread / 2 =: L'   (spread = max - min |x|^2).
        fp32 scores are s' itself. bf16 scores s~ = round(s') are rounded once, to nearest: rounding is
        monotone, so the k-th largest s~ is t~ = round(t'), t' >= t~ - h(t~), and s~_ij >= round(L')
        >= L - h(L) for L = t~ - h(t~) - 2b - spread / 2, h(v) = 2^-8 |v| (at least half a bf16 step).
        """
        top = -kth  # t~
        margin = 2 * self.error[queries] + self.spread / 2
        if self.dtype == torch.bfloat16:
            low = top - BF16_UNIT_ROUNDOFF * top.abs() - margin
            low = low - BF16_UNIT_ROUNDOFF * low.abs()
        else:
            low = top - margin
        return -(low - RELATIVE_SLACK * (top.abs() + margin) - ABSOLUTE_SLACK)

    def rows(self, x, queries, width) -> _Pool:
        """Pools of some queries: their (R, N) score rows in blocks, the top `width` of each."""
        approx, cand = [], []
        step = max(1, SCORE_BUDGET // x.shape[0])
        for s in range(0, len(queries), step):
            with _full_precision_reduction():
                scores = self.base[queries[s : s + step]] @ self.base.T  # (R, N) in self.dtype
            best, idx = scores.topk(width, dim=1)
            approx.append(-best.double())
            cand.append(idx)
        return _Pool.from_top(queries, torch.cat(approx), torch.cat(cand), x.shape[0])

    def all_rows(self, x, width, observer=None) -> _Pool:
        """Pools of every query: the entries at or above a lower bound on its `width`-th largest score,
        from one pass over the square blocks (I, J), J >= I, of x x^T (module docstring). `observer`:
        see `nearest_neighbours`' block_observer."""
        n = x.shape[0]
        block = min(n, SYMMETRIC_BLOCK)
        scan = _ThresholdScan(n, width, self.dtype, x.device, block)
        buffer = torch.empty(block * block, dtype=self.dtype, device=x.device)  # reused: no page faults
        starts = range(0, n, block)
        for i in starts:
            rows_i = slice(i, min(i + block, n))
            for j in (s for s in starts if s >= i):
                rows_j = slice(j, min(j + block, n))
                out = buffer[: (rows_i.stop - i) * (rows_j.stop - j)].view(rows_i.stop - i, rows_j.stop - j)
                with _full_precision_reduction():
                    scores = torch.mm(self.base[rows_i], self.base[rows_j].T, out=out)  # (I, J)
                if observer is not None:
                    observer(scores, rows_i, rows_j, self.error)
                scan.add(scores, rows_i, rows_j, dim=1)  # rows I: their candidates run along dim 1
                if j != i:
                    scan.add(scores, rows_j, rows_i, dim=0)  # rows J: down the columns, no transposed copy
        return scan.pool()


class _ThresholdScan:
    """Per query: the running maxima of Q groups of its scores, and every score block entry at or above
    the W-th largest of them (a lower bound on its W-th largest score, so the set found this way
    holds its W best). Candidate c of a block falls in group c mod Q; the groups of different blocks
    merge, so each of the Q maxima runs over a growing, still disjoint, set of points.

    Entries are compared as the integers that share their bits: for positive floats the order is
    the same. A query whose bound is not positive takes every entry. When a block yields more than
    OVERFLOW_FACTOR * W entries per query in all, the queries above that cap (many ties, or a bound
    that is not positive) are dropped here and searched by top-k instead: memory stays bounded.
    """

    def __init__(self, n: int, width: int, dtype: torch.dtype, device: torch.device, block: int):
        self.n, self.width = n, width
        self.groups = max(COARSE_GROUPS, width)
        self.bits_dtype = {torch.bfloat16: torch.int16, torch.float32: torch.int32}[dtype]
        self.group_max = torch.full((n, self.groups), float("-inf"), dtype=dtype, device=device)
        self.overflow = torch.zeros(n, dtype=torch.bool, device=device)
        self.cap = OVERFLOW_FACTOR * width
        self.mask = np.empty(block * block, dtype=bool) if device.type == "cpu" else None  # reused: no page faults
        self.found: list[tuple[torch.Tensor, torch.Tensor]] = []  # (query * n + candidate, score bits)

    def add(self, scores: torch.Tensor, queries: slice, cands: slice, dim: int) -> None:
        """Take the entries of `scores` (I, J) that the queries (along 1 - dim) keep; candidates run along dim."""
        groups, per_group = self.groups, scores.shape[dim] // self.groups
        if per_group:
            block_max = scores.narrow(dim, 0, per_group * groups).unflatten(dim, (per_group, groups)).amax(dim)
            block_max = block_max if dim == 1 else block_max.T  # (queries, Q)
            self.group_max[queries] = torch.maximum(self.group_max[queries], block_max)
        bound_bits = self._bound_bits(queries)
        flat, over = _entries_at_least(scores.view(self.bits_dtype), bound_bits, dim, self.cap, self.mask)
        self.overflow[queries] |= over
        along, across = flat // scores.shape[1], flat % scores.shape[1]
        query, cand = (along, across) if dim == 1 else (across, along)
        keys = (query + queries.start) * self.n + (cand + cands.start)
        self.found.append((keys, scores.view(self.bits_dtype).reshape(-1)[flat]))

    def _bound(self, queries: slice | torch.Tensor) -> torch.Tensor:
        """(R,) the W-th largest group maximum (-inf while fewer than W groups have members)."""
        return self.group_max[queries].kthvalue(self.groups - self.width + 1, dim=1).values

    def _bound_bits(self, queries: slice) -> torch.Tensor:
        bound = self._bound(queries)
        info = torch.iinfo(self.bits_dtype)
        bits = torch.where(bound > 0, bound.view(self.bits_dtype), info.min)  # not positive: take all
        return torch.where(self.overflow[queries], info.max, bits).contiguous()  # dropped: take none

    def pool(self) -> _Pool:
        """The entries at or above each query's final bound, sorted by query then descending score."""
        bound = self._bound(slice(None))
        keys = torch.cat([k for k, _ in self.found])
        bits = torch.cat([b for _, b in self.found])
        self.found = []
        query = keys // self.n
        score = bits.view(self.group_max.dtype)
        keep = (score >= bound[query]) & ~self.overflow[query]
        keys, bits, query, score = keys[keep], bits[keep], query[keep], score[keep]
        order = torch.argsort(query * (1 << 32) - _ordered(bits))  # query, then descending score
        query, cand, approx = query[order], keys[order] % self.n, -score[order].double()
        offsets = torch.zeros(self.n + 1, dtype=torch.long, device=keys.device)
        offsets[1:] = torch.cumsum(torch.bincount(query, minlength=self.n), 0)
        ceiling = torch.where(self.overflow, float("-inf"), -bound.double())
        return _Pool(torch.arange(self.n, device=keys.device), offsets, cand, approx, ceiling)


def _ordered(bits: torch.Tensor) -> torch.Tensor:
    """int64 in the order of the floats whose bits these are (sign and magnitude -> two's complement)."""
    wide = bits.long()
    magnitude = wide & torch.iinfo(bits.dtype).max
    return torch.where(wide >= 0, wide, -magnitude - 1)


def _entries_at_least(bits, bound_bits, dim, cap, mask_buffer) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions (P,) of the entries of `bits` (I, J) >= the bound of their query (queries along
    1 - dim, bound_bits (Q,)). When they are more than `cap` per query in all, the queries with more
    than `cap` take none and are reported (Q,) bool. With a (CPU) mask_buffer of at least I * J bools
    this runs in numpy, which compares small integers in SIMD and finds nonzeros several times faster
    than torch on a CPU; without one, in torch."""
    bound = bound_bits[:, None] if dim == 1 else bound_bits[None, :]
    if mask_buffer is not None:
        mask = np.greater_equal(bits.numpy(), bound.numpy(), out=mask_buffer[: bits.numel()].reshape(bits.shape))
        over = np.zeros(len(bound_bits), dtype=bool)
        if np.count_nonzero(mask) > cap * len(bound_bits):
            over = np.count_nonzero(mask, axis=dim) > cap
            mask[(over, slice(None)) if dim == 1 else (slice(None), over)] = False
        return torch.from_numpy(np.flatnonzero(mask)), torch.from_numpy(over)
    mask = bits >= bound
    over = torch.zeros(len(bound_bits), dtype=torch.bool, device=bits.device)
    if mask.sum() > cap * len(bound_bits):
        over = mask.sum(dim=dim) > cap
        mask &= ~(over[:, None] if dim == 1 else over[None, :])
    return mask.reshape(-1).nonzero().squeeze(1), over


class _FaissSearch:
    """faiss IndexFlatL2 (fp32), moved to the GPU when faiss sees one; keys are its squared distances."""

    def __init__(self, x: torch.Tensor, sqnorm: torch.Tensor):
        import faiss  # optional dependency

        self.base = x.cpu().numpy()
        self.norm = sqnorm.sqrt()
        self.cpu_index = faiss.IndexFlatL2(x.shape[1])
        self.cpu_index.add(self.base)
        self.gpu_index = faiss.index_cpu_to_all_gpus(self.cpu_index) if faiss.get_num_gpus() > 0 else None
        self.name = "faiss-gpu" if self.gpu_index is not None else "faiss-cpu"
        self.dim_u32 = _fp32_sum_error(x.shape[1] + 4)

    def all_rows(self, x, width, observer=None) -> _Pool:  # observer: refused in nearest_neighbours
        return self.rows(x, torch.arange(x.shape[0], device=x.device), width)

    def rows(self, x, queries, width) -> _Pool:
        # faiss GPU indexes return at most 2048 neighbours; wider retries use the CPU index.
        index = self.gpu_index if self.gpu_index is not None and width <= FAISS_GPU_MAX_K else self.cpu_index
        approx, cand = index.search(self.base[queries.cpu().numpy()], width)
        approx = torch.from_numpy(approx).to(x.device, torch.float64)
        return _Pool.from_top(queries, approx, torch.from_numpy(cand).to(x.device, torch.long), x.shape[0])

    def window_limit(self, kth: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(R,) kth + 2 b: with |a_ij - d_ij| <= b, the k candidates with a <= kth have d <= kth + b,
        so every true neighbour has d <= kth + b and a <= kth + 2b. faiss computes |x|^2 + |y|^2 - 2 x.y
        (or sum (x - y)^2) in fp32: each of the D-term sums is off by at most (D + 4) u32 times its
        terms' magnitude, <= (|x_i| + |x_j|)^2 in all; doubled for safety across faiss's code paths."""
        bound = 2 * self.dim_u32 * (self.norm[queries] + self.norm.max()) ** 2
        return kth + 2 * bound + RELATIVE_SLACK * kth.abs() + ABSOLUTE_SLACK


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
    native = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private: absent in some versions
    if native is not None and native():
        return True  # no timing needed (on a busy machine it can come out wrong)
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
