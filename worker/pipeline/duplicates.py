"""Duplicates inside the catalogue: every pair of designs that a search would give a verdict,
for `worker.core.duplicates` to store in each generation.

A pair (a, b) scores as a search of a's drawings would score b at the default front weight:
w * front_a . front_b + (1 - w) * back_a . back_b on the projected banks (symmetric). It is
judged as a search judges its hits (worker.pipeline.verdicts): when b is a's nearest other
design, on the score plus the thresholds' `margin_weight` times its lead over a's second
nearest, counted at least their `floor` (`verdicts.lead`; the list's own thresholds:
`verdicts.duplicate_thresholds_in`); otherwise on the score alone; the more serious of the
two directions counts (docs/quality.md). A design drawn as line sketches on both sides, in a
catalogue of coloured drawings, has no lead: every sketch of a garment draws the same empty
garment, so its nearest stands clear of its second by chance (`core.duplicates.sketched_designs`).

The pairs are found by worker.pipeline.pairfinding: every pair below SEARCH_ANN_MIN_PAIRS
designs, from it on a range search over an IVF index, which can miss a pair whose rows fall
in cells far apart (recall and times: docs/performance.md).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from worker.core.contract import DEFAULT_FRONT_WEIGHT
from worker.core.duplicates import VERDICTS, DuplicatePairs, sketched_designs
from worker.pipeline.pairfinding import (
    BLOCK_FLOATS,
    Found,
    Top,
    best_two,
    coarse_pass,
    empty_top,
    exact_pass,
    joined,
    merge_nearest,
)
from worker.pipeline.verdicts import MARGIN_WEIGHT, lead, similarities

log = logging.getLogger(__name__)


def _lead_pairs(top: Top, margin_weight: float, floor: float | None, leadless: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's pair with its nearest other row: (a, b, score, score + margin_weight times
    its `lead` over the second; none for the `leadless` rows)."""
    idx, sc = top
    rows = np.nonzero(idx[:, 0] >= 0)[0]
    first, s1, s2 = idx[rows, 0], sc[rows, 0], sc[rows, 1]
    # no second: no lead, but for a catalogue of two, where it counts as the floor (`lead`)
    alone = len(idx) == 2 and floor is not None
    led = ((idx[rows, 1] >= 0) | alone) & ~leadless[rows]
    ahead = np.where(led, lead(s1, s2, floor), 0.0)
    return (np.minimum(rows, first), np.maximum(rows, first), s1,
            (s1 + margin_weight * ahead).astype(np.float32))


def judged(plain: Found, top: Top, thresholds: dict[str, float] | None, w: float,
           min_score: float, method: str, sketched: np.ndarray | None = None) -> DuplicatePairs:
    """Pairs scoring >= min_score (`plain`) and nearest-row pairs, each judged on the more
    serious of its directions; those judged >= min_score, most serious first. `sketched`:
    (n, 2) bool, each row's sides drawn as line sketches (None: not known, none)."""
    leadless = sketched_designs(sketched, len(top[0]))
    la, lb, ls, lj = _lead_pairs(top, thresholds.get("margin_weight", MARGIN_WEIGHT),
                                 thresholds.get("floor"), leadless) \
        if thresholds else joined([]) + (np.zeros(0, np.float32),)
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
    return DuplicatePairs(a, b, score, judge, sim, verdict, top[0], top[1], w, min_score, method,
                          sketched)


def lowest_score(thresholds: dict[str, float] | None) -> float:
    """The judged score a pair needs for any verdict (inf without thresholds: none does)."""
    return min(thresholds[v] for v in VERDICTS) if thresholds else float("inf")


def find_duplicates(front: np.ndarray, back: np.ndarray, thresholds: dict[str, float] | None,
                    ann_min_pairs: int, w: float = DEFAULT_FRONT_WEIGHT,
                    sketched: np.ndarray | None = None) -> DuplicatePairs:
    """Every pair with a verdict, of (n, dim) unit-row banks: exact below `ann_min_pairs` rows
    (the setting SEARCH_ANN_MIN_PAIRS), else the coarse range search. `sketched`: (n, 2)
    bool, which sides are line sketches (the build's `indexing.sketches.pair_sketches`)."""
    min_score, start, n = lowest_score(thresholds), time.perf_counter(), front.shape[0]
    method = "coarse" if n >= max(ann_min_pairs, 2) else "exact"
    top = empty_top(n)
    plain = (coarse_pass if method == "coarse" else exact_pass)(front, back, w, min_score, top)
    pairs = judged(plain, top, thresholds, w, min_score, method, sketched)
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


def _sketches(before: DuplicatePairs | None, n_rows: int) -> np.ndarray | None:
    """(n_rows, 2) bool: the sides `before` records as line sketches; None where it records
    none (a list written before the flags: not known until the next build)."""
    known = None if before is None else before.sketched
    return None if known is None or len(known) != n_rows else known


def after_add(before: DuplicatePairs | None, front: np.ndarray, back: np.ndarray, n_before: int,
              thresholds: dict[str, float] | None, ann_min_pairs: int,
              added_sketches: np.ndarray | None = None) -> DuplicatePairs:
    """The pairs once rows n_before.. were appended (`added_sketches`: (new rows, 2) bool,
    their sides that are line sketches): the earlier ones and every pair with a new row,
    scored exactly (all again when `before` is missing or was judged otherwise)."""
    known = _sketches(before, n_before)
    sketched = None if known is None or added_sketches is None else \
        np.vstack([known, np.asarray(added_sketches, bool).reshape(-1, 2)])
    if not _reusable(before, thresholds, n_before):
        return find_duplicates(front, back, thresholds, ann_min_pairs, sketched=sketched)
    w, new = before.front_weight, empty_top(front.shape[0] - n_before)
    top = (np.vstack([before.nearest, new[0]]), np.vstack([before.nearest_score, new[1]]))
    found = exact_pass(front, back, w, before.min_score, top, first_new=n_before)
    return judged(joined([_plain(before), found]), top, thresholds, w, before.min_score,
                  before.method, sketched)


def after_remove(before: DuplicatePairs | None, front: np.ndarray, back: np.ndarray, row: int,
                 thresholds: dict[str, float] | None, ann_min_pairs: int) -> DuplicatePairs:
    """The pairs once `row` was dropped (`front`, `back`: the banks without it), later rows
    renumbered; rows it was nearest to get their nearest again, exactly."""
    known = _sketches(before, front.shape[0] + 1)
    sketched = None if known is None else np.delete(known, row, 0)
    if not _reusable(before, thresholds, front.shape[0] + 1):
        return find_duplicates(front, back, thresholds, ann_min_pairs, sketched=sketched)
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
        merge_nearest((idx, sc), rows, *best_two(scores))
    return judged((a, b, s[keep]), (idx, sc), thresholds, w, before.min_score, before.method,
                  sketched)
