"""Verdicts and similarity from scores, their calibration, and the appearance features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import ImageOps

from benchmarks.lookalike_edits import colourway, lineart
from worker.core.whitening import Whitening, learn_whitening
from worker.dev.sample import draw_side, make_designs
from worker.pipeline.appearance import (
    BLOCKS,
    PATTERN_DIMS,
    appearance,
    colour_histogram,
    pattern_edges,
    silhouette,
)
from worker.pipeline.preprocess import to_canvas
from worker.pipeline.verdicts import (
    CALIBRATED,
    calibrate,
    lowest_threshold,
    similarity,
    thresholds_in,
    verdict_of,
    verdict_scores,
)

T = {"copy": 0.8, "near-duplicate": 0.7, "similar": 0.5, "floor": 0.2, "margin_weight": 1.0}


def test_verdicts_follow_the_thresholds_most_serious_first():
    assert [verdict_of(s, T) for s in (0.95, 0.8, 0.75, 0.5, 0.49, -1.0)] == \
        ["copy", "copy", "near-duplicate", "similar", None, None]
    assert verdict_of(0.99, None) is None and similarity(0.99, None) is None


def test_the_first_hit_is_judged_with_its_lead_over_the_second():
    assert verdict_scores([0.7, 0.5, 0.4]) == pytest.approx([0.9, 0.5, 0.4])
    assert verdict_scores([0.7, 0.7]) == [0.7, 0.7]  # a tie: no lead
    assert verdict_scores([0.7]) == [0.7] and verdict_scores([]) == []


def test_a_second_below_the_floor_counts_as_scoring_the_floor():
    """In a catalogue too small to hold look-alikes the second scores like an unrelated
    design or lower: the lead is taken down to the thresholds' floor (0.2 here), no further."""
    assert verdict_scores([0.7, 0.5], T) == pytest.approx([0.9, 0.5])  # above it: as before
    assert verdict_scores([0.7, -0.5], T) == pytest.approx([1.2, -0.5])  # not 1.9
    assert verdict_scores([0.15, -0.5], T) == pytest.approx([0.15, -0.5])  # below it: no lead
    assert verdict_of(verdict_scores([0.46, -0.4], T)[0], T) == "near-duplicate"  # was a copy


def test_a_lone_hit_leads_a_second_that_scores_the_floor():
    """One design searched (a catalogue of one, a filter passing one): no second, so it counts
    as the floor, the lead as if the second scored lower; without thresholds, no lead."""
    assert verdict_scores([0.5], T) == pytest.approx([0.8])
    assert verdict_scores([0.5], T)[0] == verdict_scores([0.5, -0.9], T)[0]
    assert verdict_scores([0.15], T) == pytest.approx([0.15])  # below the floor: no lead
    assert verdict_scores([0.5]) == [0.5]


def test_similarity_maps_the_thresholds_to_fixed_points_and_stays_in_0_100():
    assert [similarity(s, T) for s in (0.2, 0.5, 0.7, 0.8, 1.0)] == [0, 50, 75, 90, 100]
    assert similarity(-1.0, T) == 0 and similarity(1.5, T) == 100
    scores = np.linspace(-1, 1, 101)
    mapped = [similarity(s, T) for s in scores]
    assert mapped == sorted(mapped)  # monotone
    alone = {**T, "near-duplicate": 0.86, "copy": 1.07}  # a side's: a copy needs a lead
    assert [similarity(s, alone) for s in (0.86, 1.0, 1.07, 1.17, 1.5)] == [75, 85, 90, 100, 100]
    mapped = [similarity(s, alone) for s in np.linspace(-1, 2, 301)]
    assert mapped == sorted(mapped) and mapped[0] == 0 and mapped[-1] == 100


def test_a_score_just_below_a_threshold_shows_less_than_its_anchor():
    """The similarity is rounded down: a near-duplicate never reads 90, nor a hit without a
    verdict 50, beside the verdict it gets."""
    for t in (T, {**T, "near-duplicate": 0.86, "copy": 1.07}):
        for verdict, anchor in (("copy", 90), ("near-duplicate", 75), ("similar", 50)):
            below = t[verdict] - 1e-4
            assert verdict_of(below, t) != verdict and similarity(below, t) == anchor - 1
            assert verdict_of(t[verdict], t) == verdict and similarity(t[verdict], t) == anchor


def test_the_lowest_threshold_keeps_the_precision_asked_for():
    # best first: four copies, then an impostor, then two copies, then impostors
    scored = [(0.9, 3), (0.85, 3), (0.8, 3), (0.78, 3), (0.7, 0), (0.6, 3), (0.55, 3), (0.4, 0),
              (0.3, 0)]
    assert lowest_threshold(scored, 3, 1.0) == 0.78
    assert lowest_threshold(scored, 3, 0.85) == 0.55  # 6 of 7 above it are copies
    assert lowest_threshold([(0.5, 0)], 3, 0.99) == float("inf")  # never precise enough


def test_calibration_orders_the_thresholds():
    rng = np.random.default_rng(0)
    hits = [(float(s), 3) for s in rng.uniform(0.7, 1.0, 50)] + \
        [(float(s), 2) for s in rng.uniform(0.4, 0.75, 100)] + \
        [(float(s), 0) for s in rng.uniform(-0.2, 0.5, 400)]
    t = calibrate(hits)
    assert t["copy"] >= t["near-duplicate"] >= t["similar"] > t["floor"]
    # calibrated with headroom: half the errors each verdict promises
    for name, (relevant, precision) in {"copy": (3, 0.995), "near-duplicate": (3, 0.975),
                                        "similar": (2, 0.8)}.items():
        above = [rel for score, rel in hits if score >= t[name]]
        assert np.mean([r >= relevant for r in above]) >= precision


def test_an_index_carries_its_thresholds_and_old_ones_fall_back_to_the_descriptor():
    assert thresholds_in({"verdicts": T, "descriptor": "trim-gem45-pw256"}) == T
    assert thresholds_in({"descriptor": "trim-gem45-pw256"}) == CALIBRATED["trim-gem45-pw256"]
    other_lead = {**T, "margin_weight": 0.0}  # calibrated with another rule: not used
    assert thresholds_in({"verdicts": other_lead, "descriptor": "trim-gem45-pw256"}) == \
        CALIBRATED["trim-gem45-pw256"]
    assert thresholds_in({"descriptor": "flatten"}) is None


def test_a_side_searched_alone_is_judged_by_the_thresholds_calibrated_for_one_side():
    alone = {**T, "copy": 0.9, "near-duplicate": 0.8}
    exact = {"verdicts": T, "one_side_verdicts": alone}
    manifest = {"exact_match": exact, "descriptor": "trim-gem45-pw256"}
    assert thresholds_in(manifest, one_side=True) == alone and thresholds_in(manifest) == T
    older = {"exact_match": {"verdicts": T}, "descriptor": "trim-gem45-pw256"}
    assert thresholds_in(older, one_side=True) == T  # an index from before: the pair's
    other_lead = {**exact, "one_side_verdicts": {**alone, "margin_weight": 0.0}}
    assert thresholds_in({**manifest, "exact_match": other_lead}, one_side=True) == T
    plain = {"verdicts": T, "descriptor": "trim-gem45-pw256"}  # scored without the bonus
    assert thresholds_in(plain, one_side=True) == T


@pytest.fixture(scope="module")
def design():
    return next(d for d in make_designs(12, seed=3) if d.pattern != "plain")


def test_a_line_sketch_has_the_silhouette_of_the_coloured_drawing(design):
    coloured, sketch = (to_canvas(img, trim=True) for img in
                        (draw_side(design, "front"), lineart(design, "front", None)))
    a, b = silhouette(coloured), silhouette(sketch)
    assert a.shape == (BLOCKS[0],) and a.mean() > 0.3  # the garment, filled
    assert np.abs(a - b).mean() < 0.05
    other = next(d for d in make_designs(12, seed=3) if d.garment != design.garment)
    assert np.abs(a - silhouette(to_canvas(draw_side(other, "front"), trim=True))).mean() > 0.05


def test_the_colour_histogram_sees_a_colourway_and_ignores_paper(design):
    rng = np.random.default_rng(1)
    canvas = to_canvas(draw_side(design, "front"), trim=True)
    recoloured = to_canvas(colourway(design, "front", rng), trim=True)
    h = colour_histogram(canvas)
    assert h.shape == (BLOCKS[1],) and np.isclose((h ** 2).sum(), 1.0)
    assert np.dot(h, colour_histogram(recoloured)) < 0.9
    assert np.all(colour_histogram(np.full((224, 224, 3), 255, np.uint8)) == 0)
    assert appearance(np.stack([canvas, recoloured])).shape == (2, sum(BLOCKS))


def test_the_pattern_edges_tell_the_pattern_family_whatever_its_colours_spacing_or_side(design):
    def edges(d, mirrored=False):
        img = draw_side(d, "front")
        return pattern_edges(to_canvas(ImageOps.mirror(img) if mirrored else img, trim=True))

    stripes = replace(design, pattern="hstripes", spacing=14)
    h = edges(stripes)
    assert h.shape == (PATTERN_DIMS,) and h[4] > 0.9  # horizontal stripes: steps at 90 degrees
    recoloured = replace(stripes, colour=(20, 20, 20), accent=(250, 240, 200))
    assert np.abs(edges(recoloured) - h).max() < 0.1
    assert np.abs(edges(stripes, mirrored=True) - h).max() < 0.05
    assert np.abs(edges(replace(stripes, spacing=24))[:5] - h[:5]).max() < 0.1  # orientations
    v = edges(replace(stripes, pattern="vstripes"))
    assert v[0] > 0.9 and v[4] < 0.3
    checks = edges(replace(stripes, pattern="checks"))
    assert min(checks[0], checks[4]) > 0.5 and max(checks[1:4]) < 0.3
    assert edges(replace(stripes, pattern="plain"))[5] < 0.5 * h[5]  # few edges inside
    assert np.all(pattern_edges(np.full((224, 224, 3), 255, np.uint8)) == 0)
    canvas = to_canvas(draw_side(stripes, "front"), trim=True)
    row = appearance(canvas[None], 3)  # one filled outline shared by silhouette and pattern
    assert row.shape == (1, sum(BLOCKS) + PATTERN_DIMS)
    np.testing.assert_array_equal(row[0], np.concatenate(
        [silhouette(canvas), colour_histogram(canvas), pattern_edges(canvas)]))


def test_whitening_with_appearance_blocks_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.random((40, 30)).astype(np.float32)
    w = learn_whitening(x, 8, blocks=((6, 0.5), (4, 0.4)))
    y = w.apply(x)
    assert y.shape == (40, 18) and w.dim == 18
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    model = unit((x[:, :20] - x[:, :20].mean(0)) @ w.projection)
    sil = 0.5 * unit(x[:, 20:26] - x[:, 20:26].mean(0))
    col = 0.4 * unit(x[:, 26:] - x[:, 26:].mean(0))
    assert np.allclose(y, unit(np.hstack([model, sil, col])), atol=1e-5)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    w.save(tmp_path / "w.npz")
    assert np.allclose(Whitening.load(tmp_path / "w.npz").apply(x), y, atol=1e-6)
    plain = learn_whitening(x, 8)
    plain.save(tmp_path / "p.npz")
    assert Whitening.load(tmp_path / "p.npz").blocks == () and plain.apply(x).shape == (40, 8)
