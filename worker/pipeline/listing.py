"""Stage 3b: the list a search shows. The score's best hits and what their verdicts judge
(`verdicts.verdict_scores`); and once the first is judged a copy or near-duplicate, the rest
ordered by design.

After a found copy, the hits below those judged a copy or near-duplicate are what a designer
calls similar: the same garment and pattern before the same colours. They are drawn from the
score's best POOL_PER_K * k and ordered by the score with the pattern's block (its edges'
orientations, `appearance.pattern_edges`) counted 1 + PATTERN_EXTRA times and without the
outline's proportions' bonus (a copy's mark, not a design's: `exact.ExactMatch.fit`); each
keeps its own score and verdict. Without a found copy the list stays in score order: a copy
the score ranks 2-20 without a verdict would be ordered like a look-alike and could leave the
list (docs/quality.md, "The list after a found copy").
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from worker.core.bank import FeatureBank
from worker.core.contract import ListOrder
from worker.pipeline.exact import ExactMatch, usable
from worker.pipeline.ranking import SearchHit, side_weights, top_k
from worker.pipeline.verdicts import verdict_scores

POOL_PER_K = 2  # the list after a found copy is drawn from the score's best 2k (more: the same)
PATTERN_EXTRA = 1.5  # chosen on the tuning seed (docs/quality.md)
PATTERN_BLOCK = 2  # the appearance block of the pattern's edges (after silhouette, colours)


class Listing(NamedTuple):
    hits: list[SearchHit]  # at most k, ranks 1.. in the order shown
    judged: list[float]  # what each hit's verdict judges (`verdict_scores`, in the score's order)
    order: ListOrder  # "design" where the hits after a found copy were ordered by design


def ranked(bank: FeatureBank, q_front: np.ndarray | None, q_back: np.ndarray | None, k: int,
           front_weight: float, sides_unknown: bool = False, allowed: np.ndarray | None = None,
           thresholds: dict[str, float] | None = None,
           sides_next: tuple[bool, bool] = (False, False)) -> Listing:
    """The k hits a search shows and the score each one's verdict judges. `thresholds`: what
    the verdicts judge by (None: no verdicts, and the score's order); `sides_next`: as
    `top_k`'s."""
    columns = None if thresholds is None else _pattern_columns(bank)
    by_design = columns is not None
    hits = top_k(bank, q_front, q_back, max(2, POOL_PER_K * k if by_design else k), front_weight,
                 sides_unknown, allowed, sides_next)  # 2: the first hit is judged on its lead
    judged = verdict_scores([hit.score for hit in hits], thresholds)
    if not (by_design and hits and judged[0] >= thresholds["near-duplicate"]):
        return Listing(hits[:k], judged[:k], "score")
    hits, judged = _after_copy(bank, columns, hits, judged, thresholds["near-duplicate"],
                               (q_front, q_back), front_weight)
    return Listing(hits[:k], judged[:k], "design")


def _pattern_columns(bank: FeatureBank) -> slice | None:
    """The bank's columns of the pattern block, None for a descriptor without one."""
    whitening = bank.whitening
    if whitening is None or len(whitening.blocks) <= PATTERN_BLOCK:
        return None
    start = int(whitening.projection.shape[1]) + sum(s for s, _ in whitening.blocks[:PATTERN_BLOCK])
    return slice(start, start + whitening.blocks[PATTERN_BLOCK][0])


def _after_copy(bank: FeatureBank, columns: slice, hits: list[SearchHit], judged: list[float],
                found: float, queries: tuple[np.ndarray | None, np.ndarray | None],
                front_weight: float) -> tuple[list[SearchHit], list[float]]:
    """The hits judged at least `found` kept first, the rest by design, ranks renumbered
    (`columns`: the bank's pattern block)."""
    head = next((i for i, score in enumerate(judged) if score < found), len(hits))
    rest = hits[head:]
    design = np.array([h.score for h in rest]) + _design_parts(
        bank, columns, rest, queries, front_weight)
    order = [*range(head), *(head + np.argsort(-design, kind="stable"))]
    return ([replace(hits[i], rank=rank) for rank, i in enumerate(order, start=1)],
            [judged[i] for i in order])


def _design_parts(bank: FeatureBank, columns: slice, hits: list[SearchHit],
                  queries: tuple[np.ndarray | None, np.ndarray | None], front_weight: float
                  ) -> np.ndarray:
    """(len(hits),) what ordering by design adds to each hit's score: the pattern block's
    (`columns`) product PATTERN_EXTRA times more, the proportions' bonus taken out; each side
    weighted as the score weighs the sides (the other way round where it swapped)."""
    rows = np.array([h.index for h in hits], np.int64)
    swapped = np.array([h.swapped for h in hits], bool)[:, None]
    front, back = bank.front[rows], bank.back[rows]
    matched = (np.where(swapped, back, front), np.where(swapped, front, back))
    weights = side_weights(*(q is not None for q in queries), front_weight)
    exact = usable(ExactMatch.of(bank.manifest), bank.whitening)

    def part(side: np.ndarray, q: np.ndarray) -> np.ndarray:
        pattern = PATTERN_EXTRA * (side[:, columns] @ q[columns])
        if exact is None:
            return pattern
        # the exact-match bonus divides each side's sum by its weights' total (a sketch's by
        # its own: `ExactMatch.divisor`)
        return (pattern - exact.fit(bank.whitening, side, q)) / exact.divisor(bank.whitening, q)

    return sum(w * part(side, q)
               for w, side, q in zip(weights, matched, queries, strict=True) if q is not None)
