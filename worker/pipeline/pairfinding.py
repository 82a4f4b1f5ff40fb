"""Finding the pairs of catalogue designs that score high, for the duplicate list
(worker.pipeline.duplicates judges them): every pair below SEARCH_ANN_MIN_PAIRS designs
(blocks of BLAS products, memory bounded by BLOCK_FLOATS), from it on a range search on a
faiss IVF index of the joint rows [sqrt(w) front | sqrt(1 - w) back], whose inner product is
the pair score; and each row's two nearest other rows. Found pairs are re-scored exactly."""

from __future__ import annotations

import numpy as np

from worker.pipeline.ann import _cpus, _threads

BLOCK_FLOATS = 1 << 23  # scores the exact pass holds at once (32 MiB of float32)
QUERY_BLOCK = 4096  # rows range-searched at once
CELLS_PER_SQRT_N = 4  # IVF cells: 4 * sqrt(n)
TRAIN_PER_CELL = 64  # k-means training rows per cell
NPROBE = 16  # cells scanned per row
EDGE = 1e-4  # the range search reaches this far below the threshold (float rounding)

Found = tuple[np.ndarray, np.ndarray, np.ndarray]  # (m,) rows a < b, (m,) rows b, (m,) scores
Top = tuple[np.ndarray, np.ndarray]  # (n, 2) nearest other rows (-1: none), (n, 2) their scores


def empty_top(n: int) -> Top:
    return np.full((n, 2), -1, np.int64), np.full((n, 2), -np.inf, np.float32)


def merge_nearest(top: Top, rows: np.ndarray, cand: np.ndarray, cand_scores: np.ndarray) -> None:
    """Keep, for each of `rows`, the best two of its current nearest and (len(rows), k) candidates."""
    idx = np.concatenate([top[0][rows], cand], axis=1)
    sc = np.concatenate([top[1][rows], cand_scores], axis=1)
    best = np.argsort(-sc, axis=1, kind="stable")[:, :2]
    top[0][rows] = np.take_along_axis(idx, best, 1)
    top[1][rows] = np.take_along_axis(sc, best, 1)


def best_two(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, c) scores (-inf: no pair) -> each row's best two columns (-1: none) and scores."""
    k = min(2, scores.shape[1])
    cols = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k else np.zeros((len(scores), 0), int)
    sc = np.take_along_axis(scores, cols, 1)
    return np.where(np.isfinite(sc), cols, -1), sc


def pair_scores(front: np.ndarray, back: np.ndarray, a: np.ndarray, b: np.ndarray,
                w: float) -> np.ndarray:
    """(m,) float32 exact scores of the pairs (a[i], b[i]) of (n, dim) banks."""
    out = np.empty(len(a), dtype=np.float32)
    step = max(1, BLOCK_FLOATS // (2 * front.shape[1]))
    for s in range(0, len(a), step):
        i, j = a[s:s + step], b[s:s + step]
        out[s:s + step] = (w * np.einsum("ij,ij->i", front[i], front[j])
                           + (1 - w) * np.einsum("ij,ij->i", back[i], back[j]))
    return out


def exact_pass(front: np.ndarray, back: np.ndarray, w: float, min_score: float, top: Top,
               first_new: int = 0) -> Found:
    """Every pair a < b with b >= first_new scoring >= min_score; `top` updated with them.
    By blocks of rows b, each against rows 0..its end: (n, block) <= BLOCK_FLOATS scores."""
    n = front.shape[0]
    block = max(1, BLOCK_FLOATS // max(n, 1))
    found: list[Found] = []
    for s in range(first_new, n, block):
        e = min(n, s + block)
        scores = front[:e] @ front[s:e].T  # (e, e - s): rows a, columns b
        scores *= w
        scores += (1 - w) * (back[:e] @ back[s:e].T)
        scores[np.arange(e)[:, None] >= np.arange(s, e)[None, :]] = -np.inf  # a < b only
        a, j = np.nonzero(scores >= min_score)
        found.append((a, j + s, scores[a, j]))
        cols, col_scores = best_two(scores.T)
        merge_nearest(top, np.arange(s, e), cols, col_scores)
        rows, row_scores = best_two(scores)
        merge_nearest(top, np.arange(e), np.where(rows >= 0, rows + s, -1), row_scores)
    return joined(found)


def coarse_pass(front: np.ndarray, back: np.ndarray, w: float, min_score: float,
                top: Top) -> Found:
    """The pairs a < b scoring >= min_score that an IVF range search finds, and each row's
    two nearest the IVF index finds (into `top`), all re-scored exactly."""
    n, dim = front.shape
    joint = np.hstack([np.sqrt(w) * front, np.sqrt(1 - w) * back]).astype(np.float32)
    faiss = _threads(_cpus())
    cells = max(1, min(n // TRAIN_PER_CELL, int(CELLS_PER_SQRT_N * np.sqrt(n))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(2 * dim), 2 * dim, cells,
                               faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, min(n, TRAIN_PER_CELL * cells), replace=False)
    index.train(joint[np.sort(sample)])
    index.add(joint)
    index.nprobe = min(NPROBE, cells)
    found: list[Found] = []
    for s in range(0, n, QUERY_BLOCK):
        queries = joint[s:s + QUERY_BLOCK]
        limits, _, rows = index.range_search(queries, min_score - EDGE)
        a = s + np.repeat(np.arange(len(limits) - 1), np.diff(limits).astype(np.int64))
        keep = a < rows
        a, b = a[keep], rows[keep].astype(np.int64)
        scores = pair_scores(front, back, a, b, w)
        found.append((a[scores >= min_score], b[scores >= min_score], scores[scores >= min_score]))
        _, near = index.search(queries, 3)  # itself among them
        own = np.arange(s, s + len(queries))[:, None]
        near = np.where(near == own, -1, near)
        qa = np.repeat(own, 3, axis=1)
        sc = np.where(near >= 0, pair_scores(front, back, qa.ravel(), np.maximum(near, 0).ravel(),
                                             w).reshape(near.shape), -np.inf)
        merge_nearest(top, own.ravel(), np.where(np.isfinite(sc), near, -1), sc.astype(np.float32))
    return joined(found)


def joined(found: list[Found]) -> Found:
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a, b, s = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32)
