"""Duplicates inside the catalogue: every pair of designs that a search would give a verdict,
for `worker.core.duplicates` to store in each generation.

A pair (a, b) scores as a search of a's drawings would score b at the default front weight:
w * front_a . front_b + (1 - w) * back_a . back_b on the projected banks (symmetric). It is
judged as a search judges its hits (worker.pipeline.verdicts): when b is a's nearest other
design, on the score plus the thresholds' `margin_weight` times its lead over a's second
nearest, counted at least their `floor` (`verdicts.lead`; the list's own thresholds:
`verdicts.duplicate_thresholds_in`); otherwise on the score alone; the more serious of the
two directions counts (docs/quality.md).

Below SEARCH_ANN_MIN_PAIRS pairs every pair is scored (blocks of BLAS products, memory
bounded by BLOCK_FLOATS); from it on, a range search on a faiss IVF index of the joint rows
[sqrt(w) front | sqrt(1 - w) back], whose inner product is the pair score: only NPROBE of its
cells are scanned per row, so a pair whose rows fall in cells far apart can be missed
(recall and times: docs/performance.md). Found pairs are re-scored exactly either way.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from worker.core.contract import DEFAULT_FRONT_WEIGHT
from worker.core.duplicates import VERDICTS, DuplicatePairs
from worker.pipeline.ann import _cpus, _threads
from worker.pipeline.verdicts import MARGIN_WEIGHT, lead, similarities

log = logging.getLogger(__name__)

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


def _merge(top: Top, rows: np.ndarray, cand: np.ndarray, cand_scores: np.ndarray) -> None:
    """Keep, for each of `rows`, the best two of its current nearest and (len(rows), k) candidates."""
    idx = np.concatenate([top[0][rows], cand], axis=1)
    sc = np.concatenate([top[1][rows], cand_scores], axis=1)
    best = np.argsort(-sc, axis=1, kind="stable")[:, :2]
    top[0][rows] = np.take_along_axis(idx, best, 1)
    top[1][rows] = np.take_along_axis(sc, best, 1)


def _best2(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        cols, col_scores = _best2(scores.T)
        _merge(top, np.arange(s, e), cols, col_scores)
        rows, row_scores = _best2(scores)
        _merge(top, np.arange(e), np.where(rows >= 0, rows + s, -1), row_scores)
    return _joined(found)


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
        _merge(top, own.ravel(), np.where(np.isfinite(sc), near, -1), sc.astype(np.float32))
    return _joined(found)


def _joined(found: list[Found]) -> Found:
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a, b, s = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return a.astype(np.int64), b.astype(np.int64), s.astype(np.float32)


def _lead_pairs(top: Top, margin_weight: float, floor: float | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's pair with its nearest other row: (a, b, score, score + margin_weight times
    its `lead` over the second)."""
    idx, sc = top
    rows = np.nonzero(idx[:, 0] >= 0)[0]
    first, s1, s2 = idx[rows, 0], sc[rows, 0], sc[rows, 1]
    ahead = np.where(idx[rows, 1] >= 0, lead(s1, s2, floor), 0.0)  # no second: no lead
    return (np.minimum(rows, first), np.maximum(rows, first), s1,
            (s1 + margin_weight * ahead).astype(np.float32))


def judged(plain: Found, top: Top, thresholds: dict[str, float] | None, w: float,
           min_score: float, method: str) -> DuplicatePairs:
    """Pairs scoring >= min_score (`plain`) and nearest-row pairs, each judged on the more
    serious of its directions; those judged >= min_score, most serious first."""
    la, lb, ls, lj = _lead_pairs(top, thresholds.get("margin_weight", MARGIN_WEIGHT),
                                 thresholds.get("floor")) \
        if thresholds else _joined([]) + (np.zeros(0, np.float32),)
    a, b = np.concatenate([plain[0], la]), np.concatenate([plain[1], lb])
    score, judge = np.concatenate([plain[2], ls]), np.concatenate([plain[2], lj])
    first = np.lexsort((-judge, b, a))  # per (a, b): its most serious judgement first
    keep = first[np.r_[True, (np.diff(a[first]) != 0) | (np.diff(b[first]) != 0)]] if len(a) else first
    keep = keep[judge[keep] >= min_score]
    keep = keep[np.lexsort((b[keep], a[keep], -judge[keep]))]
    a, b, score, judge = a[keep], b[keep], score[keep], judge[keep]
    verdict = np.full(len(a), len(VERDICTS), dtype=np.uint8)
    sim = np.zeros(len(a), dtype=np.int64)
    if len(a):
        for i, name in reversed(list(enumerate(VERDICTS))):  # the most serious one reached wins
            verdict[judge >= thresholds[name]] = i
        sim = similarities(judge, thresholds)
    return DuplicatePairs(a, b, score, judge, sim, verdict, top[0], top[1], w, min_score, method)


def lowest_score(thresholds: dict[str, float] | None) -> float:
    """The judged score a pair needs for any verdict (inf without thresholds: none does)."""
    return min(thresholds[v] for v in VERDICTS) if thresholds else float("inf")


def find_duplicates(front: np.ndarray, back: np.ndarray, thresholds: dict[str, float] | None,
                    ann_min_pairs: int, w: float = DEFAULT_FRONT_WEIGHT) -> DuplicatePairs:
    """Every pair with a verdict, of (n, dim) unit-row banks: exact below `ann_min_pairs` rows
    (the setting SEARCH_ANN_MIN_PAIRS), else the coarse range search."""
    min_score, start, n = lowest_score(thresholds), time.perf_counter(), front.shape[0]
    method = "coarse" if n >= max(ann_min_pairs, 2) else "exact"
    top = empty_top(n)
    plain = (coarse_pass if method == "coarse" else exact_pass)(front, back, w, min_score, top)
    pairs = judged(plain, top, thresholds, w, min_score, method)
    log.info("%d duplicate pairs among %d designs (%s) in %.1f s", len(pairs), n, method,
             time.perf_counter() - start)
    return pairs


def _reusable(before: DuplicatePairs | None, thresholds, n_rows: int) -> bool:
    return (before is not None and len(before.nearest) == n_rows
            and (before.min_score, before.front_weight) == (lowest_score(thresholds),
                                                            DEFAULT_FRONT_WEIGHT))


def _plain(before: DuplicatePairs) -> Found:
    keep = before.score >= before.min_score  # the rest were listed for their lead
    return before.a[keep], before.b[keep], before.score[keep]


def after_add(before: DuplicatePairs | None, front: np.ndarray, back: np.ndarray, n_before: int,
              thresholds: dict[str, float] | None, ann_min_pairs: int) -> DuplicatePairs:
    """The pairs once rows n_before.. were appended: the earlier ones and every pair with a new
    row, scored exactly (all again when `before` is missing or was judged otherwise)."""
    if not _reusable(before, thresholds, n_before):
        return find_duplicates(front, back, thresholds, ann_min_pairs)
    w, new = before.front_weight, empty_top(front.shape[0] - n_before)
    top = (np.vstack([before.nearest, new[0]]), np.vstack([before.nearest_score, new[1]]))
    found = exact_pass(front, back, w, before.min_score, top, first_new=n_before)
    return judged(_joined([_plain(before), found]), top, thresholds, w, before.min_score,
                  before.method)


def after_remove(before: DuplicatePairs | None, front: np.ndarray, back: np.ndarray, row: int,
                 thresholds: dict[str, float] | None, ann_min_pairs: int) -> DuplicatePairs:
    """The pairs once `row` was dropped (`front`, `back`: the banks without it), later rows
    renumbered; rows it was nearest to get their nearest again, exactly."""
    if not _reusable(before, thresholds, front.shape[0] + 1):
        return find_duplicates(front, back, thresholds, ann_min_pairs)
    a, b, s = _plain(before)
    keep = (a != row) & (b != row)
    a, b = (np.where(x[keep] > row, x[keep] - 1, x[keep]) for x in (a, b))
    idx, sc = np.delete(before.nearest, row, 0), np.delete(before.nearest_score, row, 0)
    stale = np.nonzero((idx == row).any(axis=1))[0]
    idx = np.where(idx > row, idx - 1, idx)
    idx[stale], sc[stale] = -1, -np.inf
    w, step = before.front_weight, max(1, BLOCK_FLOATS // max(len(front), 1))
    for start in range(0, len(stale), step):
        rows = stale[start:start + step]
        scores = w * (front[rows] @ front.T) + (1 - w) * (back[rows] @ back.T)
        scores[np.arange(len(rows)), rows] = -np.inf  # not itself
        _merge((idx, sc), rows, *_best2(scores))
    return judged((a, b, s[keep]), (idx, sc), thresholds, w, before.min_score, before.method)
