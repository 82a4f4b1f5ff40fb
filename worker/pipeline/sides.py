"""A design made of two catalogue designs' sides: each side of a two-sided query searched
alone, as a search by that side would be, and judged as one is (by the thresholds calibrated
for one side, `thresholds_in(manifest, one_side=True)`).

The pair's score averages its sides, so a new design whose front copies one catalogue design
and whose back another scores about half against each: no verdict (exploratory round 7). Two
more `top_k` of one side each: products with the banks, no forward pass.
"""

from __future__ import annotations

import numpy as np

from worker.core.bank import FeatureBank
from worker.core.catalogue import Catalogue
from worker.core.contract import SIDES, SideCopy, rounded
from worker.pipeline.ranking import top_k
from worker.pipeline.verdicts import similarity, verdict_of, verdict_scores

FLAGGED = ("copy", "near-duplicate")


def searched_alone(queries: tuple[np.ndarray | None, np.ndarray | None], front_weight: float,
                   thresholds: dict[str, float] | None, outline: tuple[bool, bool]
                   ) -> tuple[bool, bool]:
    """The (front, back) sides `side_copies` searches alone, as the search's `sides_next`."""
    if thresholds is None or any(q is None for q in queries) or not 0 < front_weight < 1:
        return (False, False)
    return (not outline[0], not outline[1])


def side_copies(bank: FeatureBank, catalogue: Catalogue,
                queries: tuple[np.ndarray | None, np.ndarray | None], front_weight: float,
                sides_unknown: bool, allowed: np.ndarray | None,
                thresholds: dict[str, float] | None,
                outline: tuple[bool, bool] = (False, False)) -> list[SideCopy]:
    """The query's sides whose first hit, searched alone among the `allowed` rows, is judged
    `copy` or `near-duplicate` by `thresholds` (with its lead over the second, as a one-side
    search judges it). None when the query has one side, when one side is weighted 0 (the
    person asked to compare the other alone) or without thresholds; never a side matched by
    its `outline` alone (a garment's cut, not its design: no verdict)."""
    found = []
    for side, q, searched in zip(SIDES, queries,
                                 searched_alone(queries, front_weight, thresholds, outline),
                                 strict=True):
        if not searched:
            continue
        alone = (q, None) if side == "front" else (None, q)
        hits = top_k(bank, *alone, k=2, front_weight=front_weight, sides_unknown=sides_unknown,
                     allowed=allowed)
        if not hits:
            continue
        judged = verdict_scores([hit.score for hit in hits], thresholds)[0]
        verdict = verdict_of(judged, thresholds)
        if verdict in FLAGGED:
            found.append(SideCopy(side=side, name=catalogue.names[hits[0].index],
                                  verdict=verdict, similarity=similarity(judged, thresholds),
                                  score=rounded(hits[0].score), swapped=hits[0].swapped))
    return found
