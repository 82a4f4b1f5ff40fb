"""Coarse-then-exact search for large banks (SEARCH_ANN_MIN_PAIRS).

Brute force reads both float32 banks for every query (2 KB per pair at 256 dims): memory
bandwidth bounds it (docs/performance.md). A bank of at least SEARCH_ANN_MIN_PAIRS pairs
also gets a `CoarseIndex`: the rows [front | back] quantized to int8 (512 bytes per pair at
256 dims) in a faiss flat inner-product index. A query's weighted vector
[w * q_front, (1 - w) * q_back] against it approximates the exact pair score; its best
C = max(10 * k, 200) rows (and, with sides unknown, the best C for the crossed vector
[w * q_back, (1 - w) * q_front]) are then re-scored exactly by `worker.pipeline.ranking` on the float32
banks, so scores, ranks and `swapped` are brute force's whenever the true top k are among the
candidates.

Quantization: each dimension d is scaled by 127 / max |x_d| over the bank and rounded, so
the index stores signed 8-bit integers (faiss QT_8bit_direct_signed, the cheapest decode);
the query is divided by the same scales (then also rounded to int8, see `_vector`), so
query . code ranks rows like query . row, up to the rounding.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from worker.core.bank import FeatureBank
from worker.pipeline.ranking import side_weights

log = logging.getLogger(__name__)

MIN_CANDIDATES = 200  # rows re-scored exactly per query vector, at least...
CANDIDATES_PER_K = 10  # ... and at least this many per requested hit
CHUNK_ROWS = 65536  # rows converted at a time while building (bounds the extra memory)
LEVELS = 127  # int8 codes in [-127, 127]


def _cpus() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cpus or 1)


@functools.cache
def _faiss():
    """faiss, imported on first use, with one OpenMP thread per available CPU."""
    import faiss

    faiss.omp_set_num_threads(_cpus())
    return faiss


def _threads(n: int):
    """faiss with min(n, CPUs) OpenMP threads for the calling thread. A flat index searches
    one query vector per thread, and a second thread with nothing to do still waits at the
    barrier for a busy core, so a one-vector search runs on one thread."""
    faiss = _faiss()
    faiss.omp_set_num_threads(min(n, _cpus()))
    return faiss


class CoarseIndex:
    """int8 [front | back] rows in a faiss index, searched for candidate rows."""

    def __init__(self, index, scale: np.ndarray, dim: int,
                 min_candidates: int = MIN_CANDIDATES, per_k: int = CANDIDATES_PER_K):
        self.index = index
        self.inv_scale = (1.0 / scale).astype(np.float32)  # (2 * dim,) applied to queries
        self.dim = dim
        self.min_candidates = min_candidates
        self.per_k = per_k

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Memory of the codes (what the index adds to the float32 banks)."""
        return len(self) * int(self.index.sa_code_size())

    @classmethod
    def build(cls, front: np.ndarray, back: np.ndarray, chunk: int = CHUNK_ROWS,
              **options) -> CoarseIndex:
        """Two (n, dim) banks (float32, possibly memory-mapped) -> index, chunk by chunk."""
        n, dim = front.shape
        faiss = _threads(_cpus())
        max_abs = np.zeros(2 * dim, dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            np.maximum(max_abs[:dim], np.abs(front[start:stop]).max(axis=0), out=max_abs[:dim])
            np.maximum(max_abs[dim:], np.abs(back[start:stop]).max(axis=0), out=max_abs[dim:])
        scale = np.where(max_abs > 0, LEVELS / np.maximum(max_abs, 1e-30), 1.0).astype(np.float32)
        index = faiss.IndexScalarQuantizer(2 * dim, faiss.ScalarQuantizer.QT_8bit_direct_signed,
                                           faiss.METRIC_INNER_PRODUCT)
        block = np.empty((min(chunk, n), 2 * dim), dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            rows = block[:stop - start]
            rows[:, :dim] = front[start:stop]
            rows[:, dim:] = back[start:stop]
            rows *= scale
            np.rint(rows, out=rows)  # faiss truncates; integers make its cast exact
            np.clip(rows, -LEVELS, LEVELS, out=rows)
            index.add(rows)
        return cls(index, scale, dim, **options)

    def n_candidates(self, k: int) -> int:
        return max(self.per_k * k, self.min_candidates, k)

    def candidates(self, q_front: np.ndarray | None, q_back: np.ndarray | None, k: int,
                   front_weight: float, sides_unknown: bool = False,
                   allowed: np.ndarray | None = None) -> np.ndarray | None:
        """Sorted unique rows whose exact scores decide the top k, among the rows `allowed`
        ((n,) bool; None: all), or None when the candidates would be the whole bank (search
        it all, masked). When no more rows are allowed than would be candidates, they are
        the candidates (an exact search over them); else faiss skips the others."""
        c = self.n_candidates(k)
        if c >= len(self):
            return None
        if allowed is not None and int(allowed.sum()) <= c:
            return np.flatnonzero(allowed)
        wf, wb = side_weights(q_front is not None, q_back is not None, front_weight)
        queries = [self._vector(q_front, q_back, wf, wb)]
        if sides_unknown:  # cross = (1 - w) * (front . q_back) + w * (back . q_front)
            queries.append(self._vector(q_back, q_front, wb, wf))
        queries = np.stack(queries)
        if not np.abs(queries).max(axis=1).all():  # an all-zero query: every score ties at 0
            return None
        faiss = _threads(len(queries))
        params, bits = None, None
        if allowed is not None:  # `bits` outlives the search: faiss reads it, not a copy
            bits = np.packbits(allowed, bitorder="little")
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(allowed),
                                                                       faiss.swig_ptr(bits)))
        _, labels = self.index.search(queries, c, params=params)  # one thread per query vector
        return np.unique(labels[labels >= 0])

    def _vector(self, first: np.ndarray | None, second: np.ndarray | None, w_first: float,
                w_second: float) -> np.ndarray:
        """[w_first * first, w_second * second] (zeros for a missing side) in code units,
        scaled to [-127, 127] and rounded: a positive factor changes no ranking, and with
        integer queries faiss's integer kernel (which casts the query to int8 itself) and
        its float one compute the same exact dot product."""
        v = np.zeros(2 * self.dim, dtype=np.float32)
        if first is not None:
            v[:self.dim] = w_first * np.asarray(first, dtype=np.float32)
        if second is not None:
            v[self.dim:] = w_second * np.asarray(second, dtype=np.float32)
        v *= self.inv_scale
        peak = float(np.abs(v).max())
        return np.rint(v * (LEVELS / peak)) if peak > 0 else v


@dataclass(frozen=True)
class IndexedBank(FeatureBank):
    """A FeatureBank that also carries its coarse index; `worker.pipeline.ranking.top_k` uses it."""

    coarse: CoarseIndex | None = None


def with_coarse_index(bank: FeatureBank, min_pairs: int, **options) -> FeatureBank:
    """`bank` with a CoarseIndex attached when it holds at least `min_pairs` pairs
    (0: always), else `bank` unchanged."""
    if len(bank) < min_pairs or len(bank) == 0:
        return bank
    start = time.perf_counter()
    coarse = CoarseIndex.build(bank.front, bank.back, **options)
    log.info("coarse index for %d pairs built in %.1f s (%.1f MiB of int8 codes)", len(bank),
             time.perf_counter() - start, coarse.nbytes / 2**20)
    return IndexedBank(bank.front, bank.back, bank.manifest, bank.whitening, bank.quantised, coarse)
