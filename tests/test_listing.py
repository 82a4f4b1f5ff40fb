"""The list a search shows (worker.pipeline.listing): once the first hit is judged a copy or
near-duplicate, the hits after the judged ones are ordered by the score with the pattern's
block counted 1 + PATTERN_EXTRA times, each keeping its score and verdict; otherwise, and for
a descriptor without a pattern block, the score's order."""

from __future__ import annotations

import numpy as np
import pytest

from worker.core.bank import FeatureBank
from worker.core.whitening import learn_whitening
from worker.pipeline.exact import ExactMatch
from worker.pipeline.listing import PATTERN_EXTRA, POOL_PER_K, ranked
from worker.pipeline.ranking import top_k
from worker.pipeline.verdicts import verdict_scores

MODEL, SIL, COL, PAT = 20, 6, 4, 6
EXACT = ExactMatch(outline_from=0.9, outline_weight=0.4, colour_from=0.8, colour_weight=0.2)
FOUND = {"copy": 0.97, "near-duplicate": 0.9, "similar": 0.5, "floor": 0.1}
NEVER = {"copy": 9.0, "near-duplicate": 8.0, "similar": 7.0, "floor": 6.0}


def _bank(pattern: bool = True, exact: bool = True, n: int = 150, seed: int = 0):
    """A bank of n look-alikes: every third design from 1 on shares design 0's pattern
    block on both sides, the others have their own."""
    rng = np.random.default_rng(seed)
    width = MODEL + SIL + COL + (PAT if pattern else 0)
    base = rng.random(width).astype(np.float32)
    sides = []
    for _ in range(2):
        x = base + 0.25 * rng.standard_normal((n, width)).astype(np.float32)
        if pattern:
            x[1::3, -PAT:] = x[0, -PAT:] + 0.02 * rng.standard_normal((len(x[1::3]), PAT))
        sides.append(x)
    blocks = ((SIL, 0.5), (COL, 0.4)) + (((PAT, 0.375),) if pattern else ())
    w = learn_whitening(np.vstack(sides), 8, blocks=blocks)
    manifest = {"exact_match": EXACT.to_manifest()} if exact else {}
    return FeatureBank(*(w.apply(x) for x in sides), manifest, w)


def _part(bank: FeatureBank, hit, q_front: np.ndarray, q_back: np.ndarray, exact: bool) -> float:
    """The pattern block's share of `hit`'s score, read from the other side where it swapped."""
    lo = bank.whitening.projection.shape[1] + SIL + COL
    rows = (bank.front[hit.index], bank.back[hit.index])[::-1 if hit.swapped else 1]
    part = 0.5 * (rows[0][lo:] @ q_front[lo:]) + 0.5 * (rows[1][lo:] @ q_back[lo:])
    return float(part) / (1.6 if exact else 1.0)


def _expected(bank, by_score, head: int, q_front, q_back, exact: bool) -> list[int]:
    rest = sorted(by_score[head:],
                  key=lambda h: -(h.score + PATTERN_EXTRA * _part(bank, h, q_front, q_back, exact)))
    return [h.index for h in by_score[:head] + rest][:20]


@pytest.mark.parametrize("exact", [True, False])
def test_after_a_found_copy_the_rest_is_ordered_by_design(exact):
    bank = _bank(exact=exact)
    q, q_back = bank.front[0], bank.back[0]  # the query is catalogue design 0
    by_score = top_k(bank, q, q_back, POOL_PER_K * 20, 0.5)
    hits, judged, order = ranked(bank, q, q_back, 20, 0.5, thresholds=FOUND)
    assert order == "design"
    assert [h.rank for h in hits] == list(range(1, 21))
    assert hits[0].index == 0 and judged[0] >= FOUND["near-duplicate"]
    head = sum(1 for s in verdict_scores([h.score for h in by_score], FOUND) if s >= FOUND["near-duplicate"])
    assert [h.index for h in hits] == _expected(bank, by_score, head, q, q_back, exact)
    # the order differs from the score's, and the designs sharing the pattern gained
    assert [h.index for h in hits] != [h.index for h in by_score[:20]]
    shared = set(range(1, len(bank), 3))
    assert sum(h.index in shared for h in hits[1:]) > sum(h.index in shared for h in by_score[1:20])


def test_each_hit_keeps_its_own_score_and_the_first_is_judged_on_its_lead_in_the_score():
    bank = _bank(seed=5)  # a bank whose second hit changes with the order
    by_score = top_k(bank, bank.front[0], bank.back[0], POOL_PER_K * 20, 0.5)
    judged_by_score = dict(zip((h.index for h in by_score),
                               verdict_scores([h.score for h in by_score], FOUND),
                               strict=True))
    hits, judged, _ = ranked(bank, bank.front[0], bank.back[0], 20, 0.5, thresholds=FOUND)
    assert hits[1].index != by_score[1].index
    scores = {h.index: h.score for h in by_score}
    for hit, score in zip(hits, judged, strict=True):
        assert hit.score == scores[hit.index]
        assert score == judged_by_score[hit.index]  # the lead over the score's second, not the list's


@pytest.mark.parametrize("case", ["no copy found", "no verdicts", "no pattern block"])
def test_otherwise_the_list_keeps_the_score_s_order(case):
    bank = _bank(pattern=case != "no pattern block")
    thresholds = {"no copy found": NEVER, "no verdicts": None}.get(case, FOUND)
    hits, judged, order = ranked(bank, bank.front[0], bank.back[0], 20, 0.5, thresholds=thresholds)
    assert order == "score"
    by_score = top_k(bank, bank.front[0], bank.back[0], 20, 0.5)
    assert hits == by_score
    assert judged == verdict_scores([h.score for h in by_score], thresholds)


def test_a_swapped_hit_s_pattern_is_read_from_its_other_side():
    bank = _bank(exact=False)
    qf, qb = bank.back[0], bank.front[0]  # design 0 with its sides the other way round
    by_score = top_k(bank, qf, qb, POOL_PER_K * 20, 0.5, sides_unknown=True)
    hits, _, _ = ranked(bank, qf, qb, 20, 0.5, sides_unknown=True, thresholds=FOUND)
    assert hits[0].index == 0 and hits[0].swapped
    head = sum(1 for s in verdict_scores([h.score for h in by_score], FOUND) if s >= FOUND["near-duplicate"])
    assert [h.index for h in hits] == _expected(bank, by_score, head, qf, qb, False)


def test_a_list_shorter_than_the_pool_and_k_of_one():
    bank = _bank(n=12)
    hits, judged, _ = ranked(bank, bank.front[0], bank.back[0], 1, 0.5, thresholds=FOUND)
    assert len(hits) == len(judged) == 1 and hits[0].index == 0
    hits, _, _ = ranked(bank, bank.front[0], bank.back[0], 50, 0.5, thresholds=FOUND)
    assert sorted(h.index for h in hits) == list(range(12))


def test_the_order_after_a_copy_leaves_out_the_proportions_bonus_of_every_side():
    """Proportions tell a copy, not a design: taken out of the order with the divisor the score
    used, the whole sum's for a drawn side, 1 + the proportions' weight for a sketched side
    (the review of 2026-12-06 found a sketch's bonus only partly taken out)."""
    rng = np.random.default_rng(3)
    n, props = 150, 6
    base = rng.random(MODEL + SIL + COL + PAT + props).astype(np.float32)
    sides = []
    for _ in range(2):
        x = base + 0.25 * rng.standard_normal((n, base.size)).astype(np.float32)
        x[1::3, MODEL + SIL + COL:-props] = x[0, MODEL + SIL + COL:-props]  # design 0's pattern
        x[2::3, -props:] = x[0, -props:] + 0.01 * rng.standard_normal((len(x[2::3]), props))
        sides.append(x)
    w = learn_whitening(np.vstack(sides), 8, blocks=((SIL, 0.5), (COL, 0.4), (PAT, 0.375),
                                                       (props, 0.0)))
    exact = ExactMatch(0.9, 0.4, 0.8, 0.2, proportion_weight=0.3, proportion_width=0.02)
    bank = FeatureBank(*(w.apply(x) for x in sides), {"exact_match": exact.to_manifest()}, w)
    q_front, q_back = bank.front[0], w.outline_only(bank.back[0:1])[0]  # the back a sketch
    by_score = top_k(bank, q_front, q_back, POOL_PER_K * 20, 0.5)
    hits, _, order = ranked(bank, q_front, q_back, 20, 0.5, thresholds=FOUND)
    assert order == "design" and hits[0].index == 0
    raw = w.raw_columns()
    pattern = slice(w.projection.shape[1] + SIL + COL, raw.start)

    def design(hit) -> float:
        total = hit.score
        for row, q, divisor in ((bank.front[hit.index], q_front, 1.9),
                                (bank.back[hit.index], q_back, 1.3)):
            fit = 0.3 * np.exp(-np.mean(((row[raw] - q[raw]) / 1e-3) ** 2) / 0.02 ** 2)
            total += 0.5 * (PATTERN_EXTRA * (row[pattern] @ q[pattern]) - fit) / divisor
        return float(total)

    head = sum(1 for s in verdict_scores([h.score for h in by_score], FOUND) if s >= FOUND["near-duplicate"])
    rest = sorted(by_score[head:], key=lambda h: -design(h))
    assert [h.index for h in hits] == [h.index for h in by_score[:head] + rest][:20]
