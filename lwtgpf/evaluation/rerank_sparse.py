"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017) at any scale: memory O(N k) plus one chunk of distances, never N x N.

It computes what the dense reference `lwtgpf.evaluation.rerank.re_ranking` computes (the Python
version torchreid and open-reid ship), from the features, with the same steps (see that module):

1. d(i, j) = 2 - 2 f_i.f_j over the N = Q + G unit-normalised query and gallery crops (the
   protocol's distance, SPEC section 7); the reference squares it and divides row i by its maximum:
   D(i, j) = d(i, j)^2 / max_j' d(i, j')^2. Ranking within a row by D is ranking by d.
2. rank(i): the max(k1 + 1, k2) nearest crops of i, i itself first: `lwtgpf.cluster.nearest_neighbours`.
3. R(i, k1), its expansion R*(i) by the half sets R(c, round(k1 / 2)), and the query expansion over the
   first k2 entries of rank(i): the training-time machinery of `lwtgpf.cluster.jaccard`
   (`expanded_neighbourhoods`, `encode`, `query_expand`). Test-time differences from SPEC section 4,
   all as in the reference: rank(i) holds k1 + 1 crops (R(i, k1) looks at the first k1 + 1 entries of
   both lists, where training looks at k1), and V[i, j] = exp(-D(i, j)) normalised over R*(i) (training
   weighs by exp(-d(i, j)), unsquared, unnormalised).
4. J(i, j) = 1 - m / (2 - m), m = sum_c min(V[i, c], V[j, c]), only for query rows i and gallery
   columns j, only for the pairs that share a column of V (`jaccard.cross_min_sums`); every other pair
   has J = 1 exactly (m = 0).
5. The result, (1 - lambda) J(i, j) + lambda D(i, j), is produced chunk by chunk of queries from a
   matmul (`KReciprocalReranking.chunks`), so the (Q, G) matrix is never held; `evaluate_features(...,
   rerank=True)` ranks each chunk as it comes.

The row maxima of step 1 need every distance once. The kNN search already scores every pair once
(square blocks of x x^T, each serving its rows and, transposed, its columns, in bf16 where that is
faster): `FarthestScan` watches those blocks, keeps each row's candidates for its farthest crop
within a proven rounding margin, and re-scores them in float64. So the whole re-ranking costs one
pass over the N x N scores (the kNN's), one over the Q x G distances (the chunks) and sparse work.

Precision and deviations from the reference (which works on float32 distance matrices):
- dot products for V and the row maxima are float64 (exact products of the float32 unit features),
  the final chunks float32 matmuls like the reference's; results agree with it to about 1e-7 (the
  tests ask 1e-6) when no two neighbours of a crop are within rounding of each other.
- neighbour lists follow the kNN contract (float64 distance, ties by smaller index, i itself first
  even when a duplicate of i sits at distance 0); the reference ranks its float32 matrix with a stable
  sort, which can put a duplicate with a smaller index ahead of i. Only duplicated crops differ.
- fewer crops than k1 + 1: every list holds all N crops, as in the reference.

Memory (N = Q + G crops, D dims, at MSMT17 N = 93,820, D = 768): the normalised features N D float32,
the kNN search's own (its bf16 copy, one score block, candidate pools), V and its query expansion
(a few hundred float64 entries per row), the (Q, G) Jaccard pairs that share a column (about 1,500
per query on bench/bench_evaluation.py's MSMT17-sized features) and one chunk of distances.
`estimate_rerank_bytes` gives the figure `lwtgpf.engine.evaluate` checks before extracting features.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from lwtgpf.cluster.jaccard import cross_min_sums, encode, expanded_neighbourhoods, query_expand
from lwtgpf.cluster.knn import BF16_UNIT_ROUNDOFF, Neighbours, nearest_neighbours, pair_dots

from .ranking import CHUNK_ELEMENTS, _as_feature_pair, _resolve_chunk_size

# estimate_rerank_bytes' constants. bench/bench_evaluation.py measured (peak RSS added + features) about
# 0.56 GiB at Market-1501 size and 1.87 GiB at MSMT17 size; the estimate gives 1.17 and 2.60 GiB.
PER_NEIGHBOUR_BYTES = 60
JACCARD_PAIRS_PER_QUERY = 2000
FIXED_BYTES = 768 << 20  # score blocks and masks of the kNN, the evaluation chunk
FOUND_PER_ROW = 64  # cap on the near-farthest candidates one score block may add per row (FarthestScan)


def _check_parameters(k1: int, k2: int, lambda_value: float) -> None:
    for name, value in (("k1", k1), ("k2", k2)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value}")


class FarthestScan:
    """The largest distance of every row, max_j d(i, j)^2 with d = 2 - 2 x_i.x_j, riding on the kNN's
    pass over the score blocks of x x^T (a `nearest_neighbours` block_observer), for unit rows x.

    A score block comes in the search's precision (bf16 or fp32): the fp32 sum of row i is within
    b_i of the exact score (the search's bound), and bf16 rounds that sum once more, by at most
    2^-8 |score| (u). With s^ the approximate scores, j^ the row's approximate argmin (s^ = low) and
    j* its true farthest crop (smallest exact score): s^(j*) <= s(j*) + e(j*) <= s(j^) + e(j*)
    <= low + e(j^) + e(j*), e = b_i + u |s^|, |s^(j*)| <= |low| + 0.05, so every candidate for j*
    has s^ <= low + margin(low), margin(low) = 2 b_i + 2u (|low| + 0.05) (+1e-6 for float rounding).
    low + margin(low) only falls as low falls, so per row this keeps the running minimum of the
    approximate scores and, from each block, every entry within that margin of it (a superset of
    the final candidates); `squared_farthest` re-scores the final candidates in float64 (exact
    products, `pair_dots`) and takes the smallest. A block that would add more than FOUND_PER_ROW
    entries to a row (near-constant features) drops them and marks the row, whose farthest is then
    found by a float32 matmul against all rows (float32 precision).
    """

    def __init__(self, n: int, device: torch.device):
        self.lowest = torch.full((n,), float("inf"), dtype=torch.float32, device=device)
        self.overflow = torch.zeros(n, dtype=torch.bool, device=device)
        self.error: torch.Tensor | None = None  # (N,) float64 b_i, from the first block
        self.rounding = 0.0  # u of the scores' dtype
        self.found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # rows, cols, approx scores
        self.mask: np.ndarray | None = None  # reused CPU buffer for the comparisons

    def __call__(self, scores: torch.Tensor, rows_i: slice, rows_j: slice, error: torch.Tensor) -> None:
        if self.error is None:
            self.error = error.double().to(self.lowest.device)
            self.rounding = BF16_UNIT_ROUNDOFF if scores.dtype == torch.bfloat16 else 0.0
        self._add(scores, rows_i, rows_j, dim=1)
        if rows_j.start != rows_i.start:
            self._add(scores, rows_j, rows_i, dim=0)  # the rows of J run down the columns

    def _limit(self, queries: slice | torch.Tensor) -> torch.Tensor:
        """(Q,) float64 low + margin(low) of these rows (class docstring)."""
        low = self.lowest[queries].double()
        return low + 2.0 * self.error[queries] + 2.0 * self.rounding * (low.abs() + 0.05) + 1e-6

    def _add(self, scores: torch.Tensor, queries: slice, cands: slice, dim: int) -> None:
        """Keep the entries of `scores` (I, J) within the margin of their query's running minimum;
        queries run along 1 - dim, their candidates along dim."""
        self.lowest[queries] = torch.minimum(self.lowest[queries], scores.amin(dim=dim).float())
        wanted = self._limit(queries)
        limit = wanted.to(scores.dtype)
        limit = torch.where(limit.double() < wanted,  # rounded down to the scores' dtype: one step up
                            limit.nextafter(torch.full_like(limit, float("inf"))), limit)
        flat, over = self._at_most(scores, limit, dim)
        self.overflow[queries] |= over
        along, across = flat // scores.shape[1], flat % scores.shape[1]
        query, cand = (along, across) if dim == 1 else (across, along)
        self.found.append((query + queries.start, cand + cands.start, scores.reshape(-1)[flat].float()))

    def _at_most(self, scores: torch.Tensor, limit: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat positions of the entries <= their query's limit (queries over the cap: none, and
        reported (Q,) bool). On the CPU the comparison runs in numpy on the floats' bit patterns:
        for a limit >= +0 as signed integers (every negative float is below), for a negative limit
        as unsigned ones (the negative floats at least as large in magnitude), several times faster
        than torch's bf16 comparison."""
        bound = limit[:, None] if dim == 1 else limit[None, :]
        cap = FOUND_PER_ROW * len(limit)
        if scores.device.type != "cpu":
            mask = scores <= bound
            over = torch.zeros(len(limit), dtype=torch.bool, device=scores.device)
            if mask.sum() > cap:
                over = mask.sum(dim=dim) > FOUND_PER_ROW
                mask &= ~(over[:, None] if dim == 1 else over[None, :])
            return mask.reshape(-1).nonzero().squeeze(1), over
        signed = {torch.bfloat16: torch.int16, torch.float32: torch.int32}[scores.dtype]
        unsigned = {torch.int16: np.uint16, torch.int32: np.uint32}[signed]
        if self.mask is None or self.mask.size < scores.numel():
            self.mask = np.empty(scores.numel(), dtype=bool)
        mask = self.mask[: scores.numel()].reshape(scores.shape)
        s, b = scores.view(signed).numpy(), bound.contiguous().view(signed).numpy()
        negative = (limit < 0).numpy()
        if not negative.any():
            np.less_equal(s, b, out=mask)
        elif negative.all():
            np.greater_equal(s.view(unsigned), b.view(unsigned), out=mask)
        else:
            rows = negative[:, None] if dim == 1 else negative[None, :]
            np.copyto(mask, np.where(rows, s.view(unsigned) >= b.view(unsigned), s <= b))
        over = np.zeros(len(limit), dtype=bool)
        if np.count_nonzero(mask) > cap:
            over = np.count_nonzero(mask, axis=dim) > FOUND_PER_ROW
            mask[(over, slice(None)) if dim == 1 else (slice(None), over)] = False
        return torch.from_numpy(np.flatnonzero(mask)), torch.from_numpy(over)

    def squared_farthest(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) float64 max_j d(i, j)^2 after the pass, x the (N, D) unit rows the pass scored."""
        rows, cols, approx = (torch.cat(parts) for parts in zip(*self.found))
        self.found = []
        keep = (approx.double() <= self._limit(rows)) & ~self.overflow[rows]
        rows, cols = rows[keep], cols[keep]
        lowest = torch.full((len(x),), float("inf"), dtype=torch.float64, device=x.device)
        lowest.scatter_reduce_(0, rows, pair_dots(x, rows, cols), reduce="amin")
        over = self.overflow.nonzero().squeeze(1)  # rows over the cap: a float32 matmul against all
        step = max(1, CHUNK_ELEMENTS // len(x))
        for start in range(0, len(over), step):
            rows = over[start:start + step]
            lowest[rows] = (x[rows] @ x.T).amin(dim=1).double()
        return (2.0 - 2.0 * lowest).square()


class KReciprocalReranking:
    """The sparse state of the re-ranking of one query/gallery split (module docstring, steps 1-4).

    q_feats (Q, D), g_feats (G, D): float features (numpy or torch; L2-normalised here), finite.
    k1 >= 1: reciprocal neighbourhood size; k2 >= 1: query-expansion size (1 turns it off);
    lambda_value in [0, 1]: weight of the original distance. device: where the matmuls and the kNN
    run (default: q_feats' device). The kNN uses the torch backend of `lwtgpf.cluster.knn` (bf16 where
    that is faster, else fp32), whose pass over all pairs also yields each row's farthest crop.
    Raises ValueError on bad shapes, parameters or non-finite features, or when every distance of a
    crop is zero (as the reference does).

    Attributes: num_query, num_gallery; row_max (N,) float64, max_j d(i, j)^2 of each of the stacked
    query + gallery crops; jaccard (Q, G) scipy CSR float64 holding J for the pairs with J < 1
    (every absent pair has J = 1).
    """

    def __init__(
        self,
        q_feats: Any,
        g_feats: Any,
        k1: int = 20,
        k2: int = 6,
        lambda_value: float = 0.3,
        device: str | torch.device | None = None,
    ):
        q_feats, g_feats = _as_feature_pair(q_feats, g_feats)
        _check_parameters(k1, k2, lambda_value)
        self.k1, self.k2, self.lambda_value = int(k1), int(k2), float(lambda_value)
        self.num_query, self.num_gallery = len(q_feats), len(g_feats)
        if self.num_query == 0 or self.num_gallery == 0:
            raise ValueError(f"need at least one query and one gallery crop, got {self.num_query} x "
                             f"{self.num_gallery}")
        device = torch.device(device) if device is not None else q_feats.device
        x = torch.cat([q_feats.to(device, torch.float32), g_feats.to(device, torch.float32)])
        self.features = F.normalize(x, dim=1, out=x)  # (N, D) unit rows, in place

        farthest = FarthestScan(len(x), device)
        neighbours = nearest_neighbours(x, max(self.k1 + 1, self.k2), backend="torch", block_observer=farthest)
        self.row_max = farthest.squared_farthest(x)
        if bool((self.row_max <= 0).any()):
            crop = int((self.row_max <= 0).nonzero()[0])
            raise ValueError(f"all distances from crop {crop} (of the stacked query+gallery crops) are "
                             "zero: re-ranking needs distinct features")
        self.jaccard = self._jaccard(neighbours)

    def _jaccard(self, neighbours: Neighbours) -> sp.csr_matrix:
        """Steps 3-4: the (Q, G) Jaccard distance of the pairs that share a column of V."""
        x, num_q, row_max = self.features, self.num_query, self.row_max

        def logits_of(rows: torch.Tensor, dots: torch.Tensor) -> torch.Tensor:
            return -(2.0 - 2.0 * dots).square() / row_max[rows]  # -D(i, j)

        expanded = expanded_neighbourhoods(neighbours.indices, self.k1)
        v = encode(x, expanded, neighbours, logits_of=logits_of)
        v = query_expand(v, neighbours.indices.cpu().numpy(), self.k2)
        m = cross_min_sums(v[:num_q], v[num_q:])
        m.data = 1.0 - m.data / (2.0 - m.data)
        return m

    def chunks(self, chunk_size: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, (C, G) float32 re-ranked distances of queries start..start+C-1), `chunk_size`
        queries at a time (default: about CHUNK_ELEMENTS distances), on the features' device.
        Every chunk is written into one reused buffer: use a chunk before asking for the next."""
        step = _resolve_chunk_size(chunk_size, self.num_gallery)
        q, g = self.features[: self.num_query], self.features[self.num_query:]
        device, lam = q.device, self.lambda_value
        row_max = self.row_max.to(device, torch.float32)
        indptr = self.jaccard.indptr.astype(np.int64)  # the stored pairs of query i: indptr[i]:indptr[i + 1]
        pairs_per_query = torch.from_numpy(np.diff(indptr)).to(device)
        pair_gallery = torch.from_numpy(self.jaccard.indices.astype(np.int64)).to(device)
        pair_jaccard = torch.from_numpy(self.jaccard.data.astype(np.float32)).to(device)
        buffer = torch.empty((min(step, len(q)), len(g)), dtype=torch.float32, device=device)
        for start in range(0, len(q), step):
            stop = min(start + step, len(q))
            dist = torch.mm(q[start:stop], g.T, out=buffer[: stop - start])
            dist.mul_(-2.0).add_(2.0).square_().div_(row_max[start:stop, None]).mul_(lam)  # lambda D(i, j)
            rows = torch.repeat_interleave(torch.arange(stop - start, device=device), pairs_per_query[start:stop])
            at = (rows, pair_gallery[indptr[start]:indptr[stop]])
            shared = dist[at] + pair_jaccard[indptr[start]:indptr[stop]] * (1.0 - lam)  # the pairs with J < 1
            dist.add_(1.0 - lam)  # J = 1 everywhere else
            dist[at] = shared
            yield start, dist

    def distance(self) -> np.ndarray:
        """The whole (Q, G) float32 re-ranked distance (holds Q x G values: for small splits)."""
        out = np.empty((self.num_query, self.num_gallery), dtype=np.float32)
        for start, dist in self.chunks():
            out[start:start + len(dist)] = dist.cpu().numpy()
        return out


def sparse_re_ranking(
    q_feats: Any, g_feats: Any, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """q_feats (Q, D), g_feats (G, D) -> the (Q, G) float32 re-ranked distance, as
    `re_ranking_features` computes it, in O(N k) memory besides the result."""
    return KReciprocalReranking(q_feats, g_feats, k1, k2, lambda_value).distance()


def available_memory_bytes() -> int | None:
    """Memory the system can give a new process now: MemAvailable of /proc/meminfo (Linux), else
    the free physical pages (os.sysconf), else None (unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_rerank_bytes(num_query: int, num_gallery: int, dim: int, k1: int = 20, k2: int = 6) -> int:
    """Rough peak memory (bytes) of a re-ranked evaluation from extraction on: the features, their
    normalised and bf16 copies, the kNN search, V, the Jaccard pairs and one chunk (module docstring).
    An upper estimate: 1.4x to 2x what bench/bench_evaluation.py measured at Market-1501 and MSMT17
    sizes (features with a realistic neighbourhood structure; near-duplicate crops can need more)."""
    n = num_query + num_gallery
    features = n * dim * (4 + 4 + 2)  # extracted, normalised stack, the kNN's bf16 copy
    neighbourhoods = n * max(k1 + 1, k2) * k2 * PER_NEIGHBOUR_BYTES  # kNN pools, V, its expansion
    jaccard = num_query * JACCARD_PAIRS_PER_QUERY * 24  # (Q, G) pairs sharing a column, with COO copies
    return features + neighbourhoods + jaccard + FIXED_BYTES
