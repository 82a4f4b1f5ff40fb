"""A crop of a design (a detail) is told from a whole drawing by its cut edges: straight,
and with no contour in front of the fill (`worker/pipeline/crops.py`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import ImageFilter

from benchmarks.lookalike_edits import detail, rescan
from worker.dev.sample import GARMENTS, draw_side, make_designs
from worker.pipeline.crops import cropped, is_crop
from worker.pipeline.preprocess import to_canvas

DESIGNS = make_designs(24, seed=5, variant_every=0)
LIGHT = (210, 180, 120)  # a ground the contour stands out against
DARK = (25, 25, 30)  # a ground as dark as the contour


@pytest.mark.parametrize("garment", GARMENTS)
def test_whole_drawings_are_not_crops_whatever_their_ground(garment):
    """Every design of the sample's garment, as drawn, re-scanned and blurred, on its own
    ground, a light one and one as dark as the contour (its hem and waistband are straight,
    and the fill meets them)."""
    rng = np.random.default_rng(3)
    for d in (d for d in DESIGNS if d.garment == garment):
        for ground in (d.colour, DARK, LIGHT):
            img = draw_side(dataclasses.replace(d, colour=ground), "front")
            assert not is_crop(to_canvas(img, trim=True)), (d.name, ground)
            assert not is_crop(to_canvas(rescan(img, rng), trim=True)), (d.name, ground)
            # its contour fades into the fill (at 2 px it is gone on a light fill: read as a crop)
            blurred = img.filter(ImageFilter.GaussianBlur(1.5))
            assert not is_crop(to_canvas(blurred, trim=True)), (d.name, ground)


def test_crops_of_a_garment_are_crops_unless_their_fill_is_as_dark_as_the_contour():
    """Most crops are found: the rules err towards whole, since a crop taken as whole is
    scored as before and a whole drawing taken as a crop loses its outline (the benchmark's
    shares: docs/quality.md)."""
    rng = np.random.default_rng(4)
    found = []
    for d in DESIGNS:
        for _ in range(2):
            cut = detail(dataclasses.replace(d, colour=LIGHT), "front", rng)
            found += [is_crop(to_canvas(cut, trim=True)),
                      is_crop(to_canvas(rescan(cut, rng), trim=True))]
    assert np.mean(found) >= 0.8, np.mean(found)
    dark = dataclasses.replace(DESIGNS[1], colour=DARK, pattern="plain")
    assert not is_crop(to_canvas(detail(dark, "front", rng), trim=True))  # as whole: no harm


def test_a_blank_or_missing_side_is_not_a_crop():
    assert cropped((np.full((224, 224, 3), 255, np.uint8), None)) == (False, False)


def test_a_crop_is_scored_without_its_outline_and_proportions():
    """A crop's silhouette and proportions are its frame's: its scores do not change with them,
    and a row like it in everything else gains the colours' bonus alone, divided by 1 + the
    colours' weight (so a pair identical in all but the outline still scores its share)."""
    from worker.core.whitening import learn_whitening
    from worker.pipeline.exact import ExactMatch

    model, sil, col, fit = 20, 6, 4, 3
    rng = np.random.default_rng(0)
    x = rng.random((30, model + sil + col + fit)).astype(np.float32)
    w = learn_whitening(x, 8, blocks=((sil, 0.5), (col, 0.4), (fit, 0.0)))
    exact = ExactMatch(0.9, 0.4, 0.8, 0.2, proportion_weight=0.2, proportion_width=0.05)
    rows = w.apply(x)
    framed = x[3].copy()
    framed[model:model + sil] = 1.0  # a filled box: the crop's frame
    framed[-fit:] = rng.random(fit)  # ... and its proportions
    as_crop, as_drawn = (w.without_outline(w.apply(r[None]))[0] for r in (framed, x[3]))
    assert not as_crop[model:model + sil].any() and not as_crop[-fit:].any()
    assert np.isclose(np.linalg.norm(as_crop), 1.0)
    scores = exact.scores(w, rows, as_crop)
    assert np.allclose(scores, exact.scores(w, rows, as_drawn), atol=1e-6)
    assert scores.argmax() == 3 and np.isclose(scores[3], (rows[3] @ as_crop + 0.2) / 1.2)
    assert exact.divisor(w, as_crop) == pytest.approx(1.2)  # as the list's pattern score reads it
    whole = exact.scores(w, rows, w.apply(framed[None])[0])  # the frame scored as an outline
    assert not np.allclose(whole, scores, atol=1e-3)
