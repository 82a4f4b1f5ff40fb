"""The exact-match bonus (worker.pipeline.exact): read from the bank's own columns, zero below
its starts, 1 for an identical pair, plain for a sketch's outline and for an index without it;
and how it reaches the search's scores and the thresholds each score is judged by."""

from __future__ import annotations

import numpy as np
import pytest

from worker.core.bank import FeatureBank
from worker.core.settings import DEFAULT_DESCRIPTOR
from worker.core.whitening import learn_whitening
from worker.pipeline.exact import CHOSEN, ExactMatch, exact_match_for
from worker.pipeline.ranking import score_pairs, top_k
from worker.pipeline.verdicts import CALIBRATED, plain_thresholds_in, thresholds_in

EXACT = ExactMatch(outline_from=0.9, outline_weight=0.4, colour_from=0.8, colour_weight=0.2)
MODEL, SIL, COL = 20, 6, 4


def _whitened(seed: int = 0, n: int = 30, pattern: int = 0):
    """A whitening with a silhouette and a colour block (and a `pattern`-dim block after
    them, as the default descriptor's), and (n, raw) catalogue rows."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, MODEL + SIL + COL + pattern)).astype(np.float32)
    blocks = ((SIL, 0.5), (COL, 0.4)) + (((pattern, 0.375),) if pattern else ())
    return learn_whitening(x, 8, blocks=blocks), x


def _block_cosines(w, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The silhouette's and colours' cosines of two projected rows, from the blocks alone."""
    start = w.projection.shape[1]
    out = []
    for lo, hi in ((start, start + SIL), (start + SIL, start + SIL + COL)):
        u, v = a[lo:hi], b[lo:hi]
        out.append(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
    return out[0], out[1]


@pytest.mark.parametrize("pattern", [0, 6])  # a block after the colours counts plainly
def test_the_bonus_is_read_from_the_blocks_and_an_identical_pair_scores_one(pattern):
    w, x = _whitened(pattern=pattern)
    y = w.apply(x)
    scores = EXACT.scores(w, y, y[3])
    assert np.isclose(scores[3], 1.0, atol=1e-5)
    for i in range(len(y)):
        sil, col = _block_cosines(w, y[i], y[3])
        bonus = 0.4 * max(sil - 0.9, 0) / 0.1 + 0.2 * max(col - 0.8, 0) / 0.2
        assert np.isclose(scores[i], (y[i] @ y[3] + bonus) / 1.6, atol=1e-5), i


def test_a_copy_keeping_outline_and_colours_gains_on_a_look_alike_that_does_not():
    w, x = _whitened(1)
    copy, look_alike = x[0].copy(), x[0].copy()
    rng = np.random.default_rng(5)
    copy[:MODEL] = rng.random(MODEL)  # its model columns changed (a colourway, another spacing)
    look_alike[:MODEL] = copy[:MODEL]
    look_alike[MODEL:] = rng.random(SIL + COL)  # the same model columns, its own outline and colours
    bank = w.apply(np.stack([x[0], look_alike]))
    q = w.apply(copy[None])[0]
    plain, bonus = bank @ q, EXACT.scores(w, bank, q)
    assert plain[1] > plain[0]  # the plain score prefers the look-alike's model columns
    assert bonus[0] > bonus[1]  # the bonus puts the design the copy was made from first


def test_an_outline_query_is_scored_plainly():
    w, x = _whitened(2)
    y = w.apply(x)
    outline = w.outline_only(y[4:5])[0]
    assert np.allclose(EXACT.scores(w, y, outline), y @ outline)


def test_the_search_uses_the_index_s_bonus_and_an_index_without_it_is_plain():
    w, x = _whitened(3)
    y = w.apply(x)
    with_bonus = FeatureBank(y, y, {"exact_match": EXACT.to_manifest()}, w)
    plain = FeatureBank(y, y, {}, w)
    q = y[7]
    assert np.allclose(score_pairs(with_bonus, q, q, 0.5).total, EXACT.scores(w, y, q), atol=1e-6)
    assert np.allclose(score_pairs(plain, q, q, 0.5).total, y @ q, atol=1e-6)
    swapped = score_pairs(with_bonus, q, None, 0.5, sides_unknown=True)  # cross sides too
    assert np.allclose(swapped.total, EXACT.scores(w, y, q), atol=1e-6)


@pytest.mark.parametrize("descriptor", [DEFAULT_DESCRIPTOR, "grey-dir345-lw256-shape-colour"])
def test_an_index_with_the_bonus_is_judged_by_its_thresholds_and_duplicates_by_the_plain(
        descriptor):
    stored = exact_match_for(descriptor)
    assert ExactMatch.of({"exact_match": stored}) == CHOSEN[descriptor]
    assert ExactMatch.of({"exact_match": {**stored, "later": 1}}) == CHOSEN[descriptor]
    assert ExactMatch.of({}) is None and exact_match_for("trim-gem45-pw256") is None
    plain, bonus = CALIBRATED[descriptor], CHOSEN[descriptor].verdicts
    assert bonus["copy"] < plain["copy"]  # the bonus's scores are divided by 1 + its weights
    new = {"verdicts": plain, "exact_match": stored, "descriptor": descriptor}
    assert thresholds_in(new) == bonus and plain_thresholds_in(new) == plain
    # an index built before the bonus (and code that predates it, reading "verdicts") is
    # scored plainly and judged by the plain thresholds
    old = {"verdicts": plain, "descriptor": descriptor}
    assert thresholds_in(old) == plain_thresholds_in(old) == plain
    assert thresholds_in({"descriptor": descriptor}) == plain  # nothing stored: the descriptor's


@pytest.mark.parametrize("exact", [None, EXACT])
@pytest.mark.parametrize("sides", ["both", "front", "back"])
def test_front_weight_weighs_the_query_s_front_also_where_it_matched_a_back(sides, exact):
    """With sides unknown, a swapped hit's front_score is the query's front against the
    design's back; front_weight weighs it, so the score is made of the shown side scores as
    for any hit (it weighed the design's front before, the query's back)."""
    w, x = _whitened(7, n=40)
    fronts, backs = w.apply(x[:20]), w.apply(x[20:])
    q_front = backs[2] if sides != "back" else None  # design 2 filed the other way round
    q_back = fronts[2] if sides != "front" else None
    manifest = {} if exact is None else {"exact_match": exact.to_manifest()}
    hits = top_k(FeatureBank(fronts, backs, manifest, w), q_front, q_back, 10, 0.3,
                 sides_unknown=True)
    assert hits[0].index == 2 and hits[0].swapped and any(not h.swapped for h in hits)
    weights = (0.3, 0.7) if sides == "both" else (1.0, 1.0)
    for h in hits:
        front, back = h.front_score or 0.0, h.back_score or 0.0
        assert h.score == pytest.approx(weights[0] * front + weights[1] * back, abs=1e-5), h
