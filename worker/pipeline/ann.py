"""Coarse-then-exact search for large banks (SEARCH_ANN_MIN_PAIRS).

Brute force reads both float32 banks for every query (3.8 KB per pair at the default
descriptor's 476 dims): memory bandwidth bounds it (docs/performance.md). A bank of at least
SEARCH_ANN_MIN_PAIRS pairs also gets a `CoarseIndex`: the rows [front | back] product-quantized
to 4 bits for every SUB_DIMS dimensions (faiss's fast-scan PQ: 238 bytes per pair at 476
dims), whose scan is a SIMD table look-up rather than a read of every dimension. A query's
weighted vector [w * q_front, (1 - w) * q_back] against it approximates the exact pair score;
its best C = max(10 * k, MIN_CANDIDATES) rows (and, with sides unknown, the best C for the
crossed vector [w * q_back, (1 - w) * q_front]) are then re-scored exactly by
`worker.pipeline.ranking` on the float32 banks, so scores, ranks and `swapped` are brute
force's whenever the true top k are among the candidates.

fast-scan takes no row filter: a filtered search asks it for C / (share of rows allowed)
candidates and keeps the allowed ones, deeper while fewer than C are allowed, or scores the
allowed rows exactly when they are few.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from worker.core.bank import COARSE_INDEX, FeatureBank
from worker.pipeline.ranking import side_weights

log = logging.getLogger(__name__)

MIN_CANDIDATES = 5000  # rows re-scored exactly per query vector, at least...
CANDIDATES_PER_K = 10  # ... and at least this many per requested hit
CHUNK_ROWS = 65536  # rows added at a time while building (bounds the extra memory)
SUB_DIMS = 2  # dims per 4-bit code: 4 scans twice as fast, less exactly (docs/performance.md)
TRAIN_ROWS = 65536  # rows, evenly spaced over the bank, that the codebooks are learned from
MIN_TRAIN_ROWS = 256  # a smaller bank's rows are repeated up to this (16 centroids a code)
EXACT_FILTERED = 4  # a filter allowing <= 4 C rows: those rows scored exactly, no scan
CODES = f"pq-fastscan-{SUB_DIMS}x4"  # a stored index of other codes is built again


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
    """faiss with min(n, CPUs) OpenMP threads for the calling thread. A scan splits its query
    vectors over the threads, and a second thread with nothing to do still waits at the
    barrier for a busy core, so a one-vector search runs on one thread."""
    faiss = _faiss()
    faiss.omp_set_num_threads(min(n, _cpus()))
    return faiss


def _joint(front: np.ndarray, back: np.ndarray, width: int) -> np.ndarray:
    """[front | back | zeros] rows, `width` wide (the codes' width: a whole number of codes)."""
    rows = np.zeros((len(front), width), dtype=np.float32)
    dim = front.shape[1]
    rows[:, :dim] = front
    rows[:, dim:2 * dim] = back
    return rows


class CoarseIndex:
    """[front | back] rows, product-quantized in a faiss fast-scan index, searched for
    candidate rows."""

    def __init__(self, index, dim: int, min_candidates: int = MIN_CANDIDATES,
                 per_k: int = CANDIDATES_PER_K):
        self.index = index
        self.dim = dim
        self.min_candidates = min_candidates
        self.per_k = per_k
        self._lock = threading.Lock()
        self._last: dict[bytes, np.ndarray] = {}  # the last scan's vectors -> best rows

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Memory of the codes (what the index adds to the float32 banks)."""
        return len(self) * int(self.index.code_size)

    @classmethod
    def build(cls, front: np.ndarray, back: np.ndarray, chunk: int = CHUNK_ROWS,
              **options) -> CoarseIndex:
        """Two (n, dim) banks (float32, possibly memory-mapped) -> index, chunk by chunk."""
        n, dim = front.shape
        faiss = _threads(_cpus())
        codes = math.ceil(2 * dim / SUB_DIMS / 2) * 2  # an even number of 4-bit codes
        width = codes * SUB_DIMS
        index = faiss.IndexPQFastScan(width, codes, 4, faiss.METRIC_INNER_PRODUCT)
        # evenly spaced rows (a catalogue is often ordered by season or garment), repeated
        # for a small bank: k-means needs more rows than its 16 centroids
        sample = np.unique(np.linspace(0, n - 1, min(n, TRAIN_ROWS)).astype(np.int64))
        train = _joint(front[sample], back[sample], width)
        index.train(np.tile(train, (math.ceil(MIN_TRAIN_ROWS / len(train)), 1)))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            index.add(_joint(front[start:stop], back[start:stop], width))
        return cls(index, dim, **options)

    def n_candidates(self, k: int) -> int:
        return max(self.per_k * k, self.min_candidates, k)

    def candidates(self, q_front: np.ndarray | None, q_back: np.ndarray | None, k: int,
                   front_weight: float, sides_unknown: bool = False,
                   allowed: np.ndarray | None = None,
                   sides_next: tuple[bool, bool] = (False, False)) -> np.ndarray | None:
        """Sorted unique rows whose exact scores decide the top k, among the rows `allowed`
        ((n,) bool; None: all), or None when the candidates would be the whole bank (search
        it all, masked). When at most EXACT_FILTERED times the candidates are allowed, they
        are the candidates (an exact search over them); else each query vector's best
        allowed rows, as many as a search without the filter re-scores, scanning deeper
        until it has them (None, the whole bank, past a quarter of it). `sides_next`: the
        (front, back) sides searched alone next, scanned with this search (one scan reads
        the codes once for every vector)."""
        n, wanted = len(self), self.n_candidates(k)
        if wanted >= n:
            return None
        c = wanted
        if allowed is not None:
            passing = int(allowed.sum())
            if passing <= EXACT_FILTERED * wanted:
                return np.flatnonzero(allowed)
            c = math.ceil(wanted * n / passing)
        vectors = self._vectors(q_front, q_back, front_weight, sides_unknown)
        if not np.abs(np.stack(vectors)).max(axis=1).all():  # all zero: every score ties at 0
            return None
        sides = zip(((q_front, None), (None, q_back)), sides_next, strict=True)
        ahead = [vector for alone, asked in sides if asked and any(q is not None for q in alone)
                 for vector in self._vectors(*alone, front_weight, sides_unknown)]
        if allowed is None:
            labels = self._scan(vectors, ahead, c)
            return np.unique(labels[labels >= 0])
        while c <= n // EXACT_FILTERED:  # deeper than that: the whole bank, masked
            kept = [row[allowed[row]][:wanted]  # each vector's best allowed rows
                    for row in (r[r >= 0] for r in self._scan(vectors, ahead, c))]
            fewest = min(len(rows) for rows in kept)
            if fewest >= wanted:  # as many for each vector as an unfiltered search re-scores
                return np.unique(np.concatenate(kept))
            # a filter the query's best rows mostly fail (a garment other than the query's):
            # deeper, by the share of the best rows it let through, at least twice as deep
            c = max(2 * c, math.ceil(c * wanted / max(fewest, 1)))
        return None

    def _vectors(self, q_front: np.ndarray | None, q_back: np.ndarray | None,
                 front_weight: float, sides_unknown: bool) -> list[np.ndarray]:
        """The query's weighted vector, and with sides unknown the crossed one."""
        wf, wb = side_weights(q_front is not None, q_back is not None, front_weight)
        vectors = [self._vector(q_front, q_back, wf, wb)]
        if sides_unknown:  # cross = (1 - w) * (front . q_back) + w * (back . q_front)
            vectors.append(self._vector(q_back, q_front, wb, wf))
        return vectors

    def _scan(self, vectors: list[np.ndarray], ahead: list[np.ndarray], c: int) -> np.ndarray:
        """(len(vectors), c) the best rows of each vector, best first: those the last scan
        found (its best c or more), else one scan for them and the vectors `ahead`, kept for
        the next calls (fast-scan reads the codes once for a block of vectors: three cost
        about 1.5 times one, docs/performance.md)."""
        keys = [v.tobytes() for v in vectors]
        with self._lock:
            if all(len(self._last.get(key, ())) >= c for key in keys):
                return np.stack([self._last[key][:c] for key in keys])
        scanned = np.stack(vectors + [v for v in ahead if v.tobytes() not in keys])
        _threads(len(scanned))
        _, labels = self.index.search(scanned, c)
        with self._lock:
            self._last = {v.tobytes(): row for v, row in zip(scanned, labels, strict=True)}
        return labels[:len(vectors)]

    def _vector(self, first: np.ndarray | None, second: np.ndarray | None, w_first: float,
                w_second: float) -> np.ndarray:
        """[w_first * first, w_second * second, zeros] (zeros also for a missing side)."""
        v = np.zeros(self.index.d, dtype=np.float32)
        if first is not None:
            v[:self.dim] = w_first * np.asarray(first, dtype=np.float32)
        if second is not None:
            v[self.dim:2 * self.dim] = w_second * np.asarray(second, dtype=np.float32)
        return v


@dataclass(frozen=True)
class IndexedBank(FeatureBank):
    """A FeatureBank that also carries its coarse index; `worker.pipeline.ranking.top_k` uses it."""

    coarse: CoarseIndex | None = None


def with_coarse_index(bank: FeatureBank, min_pairs: int, **options) -> FeatureBank:
    """`bank` with a CoarseIndex attached when it holds at least `min_pairs` pairs
    (0: always), else `bank` unchanged: the one its generation stores when it has one of
    these codes (and no `options`), else built now."""
    if len(bank) < min_pairs or len(bank) == 0:
        return bank
    start = time.perf_counter()
    coarse = None if options else _stored(bank)
    how = "loaded" if coarse is not None else "built"
    if coarse is None:
        coarse = CoarseIndex.build(bank.front, bank.back, **options)
    log.info("coarse index for %d pairs %s in %.1f s (%.1f MiB of codes)", len(bank), how,
             time.perf_counter() - start, coarse.nbytes / 2**20)
    return IndexedBank(bank.front, bank.back, bank.manifest, bank.whitening, bank.quantised,
                       coarse=coarse)


def stored_index(front: np.ndarray, back: np.ndarray, min_pairs: int
                 ) -> tuple[dict[str, bytes], dict | None]:
    """What a new generation stores of its coarse index, so that workers load it instead of
    building it (20 s at 1M pairs): ({COARSE_INDEX: its bytes}, the manifest's
    `coarse_index`), or ({}, None) for banks that get none."""
    if len(front) < min_pairs or len(front) == 0:
        return {}, None
    index = CoarseIndex.build(front, back).index
    return ({COARSE_INDEX: _faiss().serialize_index(index).tobytes()},
            {"codes": CODES, "pairs": len(front)})


def _stored(bank: FeatureBank) -> CoarseIndex | None:
    """The generation's stored index, when it is the file its manifest lists and holds these
    codes of these rows; else None (built instead: the index can always be built again)."""
    if bank.stored_coarse is None or bank.manifest.get("coarse_index") != {
            "codes": CODES, "pairs": len(bank)}:
        return None
    try:
        blob = bank.stored_coarse.read_bytes()
        if hashlib.sha256(blob).hexdigest() != bank.manifest["sha256"].get("coarse"):
            raise RuntimeError("it does not match its manifest (changed or truncated)")
        index = _faiss().deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    except (OSError, RuntimeError) as exc:  # gone, damaged, another faiss's format
        log.warning("the stored coarse index %s cannot be used (%s); building it",
                    bank.stored_coarse, exc)
        return None
    return CoarseIndex(index, bank.front.shape[1]) if index.ntotal == len(bank) else None
