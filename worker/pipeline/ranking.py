"""Stage 3: score the query against the banks and keep the top k.

A query has a front, a back, or both. With `sides_unknown`, each query image is also
matched against the other side of every pair, and the better assignment counts (a drawing
filed as the back of another design still matches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worker.core.bank import FeatureBank
from worker.core.catalogue import Catalogue
from worker.core.contract import Hit, rounded
from worker.pipeline.exact import ExactMatch, usable
from worker.pipeline.verdicts import similarity, verdict_of


def project_query(bank: FeatureBank, row: np.ndarray, outline: bool = False,
                  crop: bool = False) -> np.ndarray:
    """One query image's (raw dim,) descriptor -> (dim,) in the bank's space; with `outline`,
    its silhouette alone (`Whitening.outline_only`); with `crop`, all but its outline
    (`Whitening.without_outline`)."""
    q = bank.project(row[None])
    if outline:
        q = bank.whitening.outline_only(q)
    elif crop and bank.whitening is not None:
        q = bank.whitening.without_outline(q)
    return q[0]


@dataclass(frozen=True)
class SearchHit:
    rank: int  # 1-based
    index: int  # row in pairs.csv and in the banks
    score: float
    front_score: float | None  # None when the query had no front
    back_score: float | None  # None when the query had no back
    swapped: bool = False  # the query's front matched the design's back (sides unknown)

    def to_hit(self, catalogue: Catalogue, thresholds: dict[str, float] | None,
               judged: float) -> Hit:
        """The hit as the result reports it, named from the catalogue row, with the verdict
        and similarity of `judged` (its score as `verdict_scores` gives it)."""
        i = self.index
        return Hit(rank=self.rank, name=catalogue.names[i], score=rounded(self.score),
                   front_score=rounded(self.front_score), back_score=rounded(self.back_score),
                   swapped=self.swapped, front=catalogue.fronts[i], back=catalogue.backs[i],
                   verdict=verdict_of(judged, thresholds),
                   similarity=similarity(judged, thresholds), columns=catalogue.columns_of(i))


@dataclass(frozen=True)
class Scores:
    """(n_pairs,) arrays; front/back are None for a side the query lacks."""

    total: np.ndarray
    front: np.ndarray | None
    back: np.ndarray | None
    swapped: np.ndarray  # bool


def side_weights(has_first: bool, has_second: bool, w: float) -> tuple[float, float]:
    """How two score arrays, either of which may be missing, are weighted: both -> (w, 1 - w),
    only one -> 1 for it. (The coarse index in `worker.pipeline.ann` weights its query the same way.)"""
    if has_first and has_second:
        return w, 1.0 - w
    return (1.0, 0.0) if has_first else (0.0, 1.0)


def _combine(front: np.ndarray | None, back: np.ndarray | None, w: float) -> np.ndarray:
    weights = side_weights(front is not None, back is not None, w)
    return sum(wt * s for wt, s in zip(weights, (front, back), strict=True) if s is not None)


def _check_query(q_front: np.ndarray | None, q_back: np.ndarray | None) -> None:
    if q_front is None and q_back is None:
        raise ValueError("a query needs a front, a back, or both")


def score_pairs(bank: FeatureBank, q_front: np.ndarray | None, q_back: np.ndarray | None,
                front_weight: float, sides_unknown: bool = False) -> Scores:
    """(dim,) unit query vectors (either may be None) -> per-pair scores.

    total = w * (front_q . front_bank) + (1 - w) * (back_q . back_bank), w = front_weight;
    a one-sided query scores that side alone. Each side's dot product gains the index's
    exact-match bonus where it has one (`worker.pipeline.exact`).
    """
    _check_query(q_front, q_back)

    def side(rows: np.ndarray, q: np.ndarray | None) -> np.ndarray | None:
        return None if q is None else side_scores(bank, rows, q)

    front, back = side(bank.front, q_front), side(bank.back, q_back)
    total = _combine(front, back, front_weight)
    swapped = np.zeros(total.shape[0], dtype=bool)
    if sides_unknown:
        cross_front = side(bank.front, q_back)  # query back vs fronts
        cross_back = side(bank.back, q_front)  # query front vs backs
        # the weight follows the query's drawings: its front's score (against the design's
        # back) weighs front_weight, as the shown front_score
        cross = _combine(cross_back, cross_front, front_weight)
        swapped = cross > total
        total = np.where(swapped, cross, total)
        if front is not None:
            front = np.where(swapped, cross_back, front)
        if back is not None:
            back = np.where(swapped, cross_front, back)
    return Scores(total, front, back, swapped)


def side_scores(bank: FeatureBank, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n, dim) rows of one bank side, a (dim,) projected query side -> (n,) scores: dot
    products, with the index's exact-match bonus where it has one (`worker.pipeline.exact`)."""
    exact = usable(ExactMatch.of(bank.manifest), bank.whitening)
    return rows @ q if exact is None else exact.scores(bank.whitening, rows, q)


def top_k(bank: FeatureBank, q_front: np.ndarray | None, q_back: np.ndarray | None, k: int,
          front_weight: float, sides_unknown: bool = False,
          allowed: np.ndarray | None = None,
          sides_next: tuple[bool, bool] = (False, False)) -> list[SearchHit]:
    """The k best pairs, best first (ties broken by catalogue order), among the rows
    `allowed` ((n_pairs,) bool, a search's filters; None: all): fewer only when fewer pass.
    `sides_next`: the (front, back) sides the caller searches alone next (a coarse index
    scans for them with this search).

    A bank with a coarse index (`worker.pipeline.ann`, large catalogues) scores exactly only the rows
    that index proposes among the allowed ones; otherwise every row, the others masked out.
    """
    _check_query(q_front, q_back)
    coarse = getattr(bank, "coarse", None)
    rows = None if coarse is None else coarse.candidates(q_front, q_back, k, front_weight,
                                                         sides_unknown, allowed, sides_next)
    if rows is not None:  # sorted allowed rows, so ties still break by catalogue order
        bank = FeatureBank(bank.front[rows], bank.back[rows], bank.manifest, bank.whitening)
        allowed = None
    s = score_pairs(bank, q_front, q_back, front_weight, sides_unknown)
    total = s.total if allowed is None else np.where(allowed, s.total, -np.inf)
    n = total.shape[0]
    k = min(k, n if allowed is None else int(allowed.sum()))
    if k <= 0:
        return []
    candidates = np.argpartition(-total, k - 1)[:k] if k < n else np.arange(n)
    order = candidates[np.lexsort((candidates, -total[candidates]))]

    def side(scores: np.ndarray | None, i: int) -> float | None:
        return None if scores is None else cosine(scores[i])

    def row(i: int) -> int:
        return int(i) if rows is None else int(rows[i])

    return [SearchHit(rank, row(i), cosine(s.total[i]), side(s.front, i), side(s.back, i),
                      bool(s.swapped[i])) for rank, i in enumerate(order, start=1)]


def cosine(score) -> float:
    """A score of unit rows as shown: within [-1, 1] (float32 sums overshoot by ~1e-7)."""
    return min(1.0, max(-1.0, float(score)))
