"""Line sketches of the flat: told from coloured drawings, and matched by their outline alone
in a catalogue of coloured drawings (never in one of sketches)."""

from __future__ import annotations

import numpy as np

from benchmarks.lookalike_edits import lineart
from worker.core.bank import FeatureBank
from worker.core.whitening import learn_whitening
from worker.dev.sample import draw_side, make_designs
from worker.pipeline.appearance import BLOCKS, coverage, is_sketch
from worker.pipeline.preprocess import to_canvas
from worker.pipeline.ranking import outline_sides, project_query

DESIGNS = make_designs(8, 7)


def test_a_sketch_is_told_from_a_coloured_drawing():
    rng = np.random.default_rng(0)
    for design in DESIGNS:
        coloured = to_canvas(draw_side(design, "front"), True)
        sketch = to_canvas(lineart(design, "front", rng), True)
        assert coverage(coloured) > 0.9 and not is_sketch(coloured)
        assert coverage(sketch) < 0.3 and is_sketch(sketch)


def bank_of(sketch_share: float | None) -> FeatureBank:
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(40, 32 + sum(BLOCKS)))
    whitening = learn_whitening(raw, 8, blocks=tuple(zip(BLOCKS, (0.5, 0.4), strict=True)))
    rows = whitening.apply(raw)
    manifest = {} if sketch_share is None else {"sketch_share": sketch_share}
    return FeatureBank(rows[:20], rows[20:], manifest, whitening), raw


def test_a_sketch_keeps_only_its_silhouette_in_a_catalogue_of_coloured_drawings():
    bank, raw = bank_of(0.0)
    assert outline_sides(bank, (True, False)) == (True, False)
    q = project_query(bank, raw[0], outline=True)
    silhouette = slice(8, 8 + BLOCKS[0])
    assert np.count_nonzero(q[:8]) == 0 and np.count_nonzero(q[8 + BLOCKS[0]:]) == 0
    np.testing.assert_allclose(np.linalg.norm(q), 1.0, atol=1e-6)
    whole = project_query(bank, raw[0])
    np.testing.assert_allclose(q[silhouette], whole[silhouette] / np.linalg.norm(whole[silhouette]),
                               atol=1e-6)
    # against whole catalogue rows it scores the silhouette, scaled by its share: no verdicts
    assert float(q @ bank.front[0]) < 0.5


def test_among_sketches_or_with_an_older_index_a_sketch_is_compared_whole():
    assert outline_sides(bank_of(0.8)[0], (True, True)) == (False, False)
    assert outline_sides(bank_of(None)[0], (True, True)) == (False, False)
