"""The outline's proportions (appearance.proportions): what a copy keeps and a look-alike cut
wider or longer does not; kept raw in the bank row (a weight-0 block: Whitening), where no
dot product sees them, and compared by the exact-match bonus (worker.pipeline.exact)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from worker.core.whitening import RAW_SCALE, learn_whitening
from worker.dev.sample import draw_side, make_designs
from worker.pipeline.appearance import (
    INK,
    PROPORTION_DIMS,
    _inside,
    _upright,
    appearance,
    ink_mask,
    proportions,
)
from worker.pipeline.exact import ExactMatch
from worker.pipeline.preprocess import to_canvas

MODEL, SIL, COL = 20, 6, 4
EXACT = ExactMatch(0.9, 0.4, 0.8, 0.2, proportion_weight=0.2, proportion_width=0.015)


def _canvas(design, side: str = "front", scale: float = 1.0) -> np.ndarray:
    img = draw_side(design, side)
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)))
    return to_canvas(img, trim=True)


def test_a_copy_keeps_its_proportions_and_a_wider_or_longer_look_alike_does_not():
    design = make_designs(8, seed=3)[1]
    own = proportions(_canvas(design))
    assert own.shape == (PROPORTION_DIMS,) and own.dtype == np.float32
    recoloured = dataclasses.replace(design, colour=(200, 60, 60), accent=(20, 90, 160),
                                     spacing=design.spacing + 6)
    for copy in (_canvas(recoloured), np.ascontiguousarray(_canvas(design)[:, ::-1]),
                 _canvas(design, scale=1.7)):  # other colours and spacing, mirrored, larger
        assert np.sqrt(np.mean((proportions(copy) - own) ** 2)) < 0.01
    for cut in ({"width": design.width * 1.08}, {"length": design.length * 1.08}):
        other = proportions(_canvas(dataclasses.replace(design, **cut)))
        assert np.sqrt(np.mean((other - own) ** 2)) > 0.015, cut


def test_a_scan_tilted_ten_degrees_is_measured_upright():
    """Each garment, both ways: the tilt is undone before the spreads are measured (measured
    along the page's axes, a 10-degree tilt moved them 0.015-0.046, past the bonus's width
    of 0.015; undone, 0.002-0.009, and the trousers 0.015: the gap between the legs is filled
    row by row, so a tilt changes how much of it the outline holds)."""
    for design in make_designs(4, seed=3):  # one of each garment
        img, own = draw_side(design, "front"), proportions(_canvas(design))
        for degrees in (10, -10):
            tilted = img.rotate(degrees, Image.Resampling.BICUBIC, expand=True,
                                fillcolor=(255, 255, 255))
            moved = np.sqrt(np.mean((proportions(to_canvas(tilted, trim=True)) - own) ** 2))
            assert moved < (0.02 if design.garment == "trousers" else 0.012), (
                design.garment, degrees, moved)


def test_only_a_tilt_up_to_max_tilt_is_undone():
    """An elongated outline (standing or lying) tilted 10 degrees is turned back to its axes;
    one at 20 degrees is taken for a shape drawn so and left as it is."""
    t = np.linspace(0.0, 2.0 * np.pi, 400, endpoint=False)
    for tall in (False, True):
        x, y = 60.0 * np.cos(t), 25.0 * np.sin(t)
        x, y = (y, x) if tall else (x, y)
        for degrees, turned in ((10, True), (-10, True), (20, False)):
            a = np.radians(degrees)
            xs, ys = np.cos(a) * x - np.sin(a) * y, np.sin(a) * x + np.cos(a) * y
            ux, uy = _upright(xs, ys)
            if turned:
                assert abs(np.mean(ux * uy)) < 1e-6 and np.ptp(ux) == pytest.approx(
                    np.ptp(x), rel=1e-6)
            else:
                assert np.array_equal(ux, xs) and np.array_equal(uy, ys)


def test_scanner_noise_on_the_paper_does_not_stretch_the_filled_outline():
    """Gaussian noise of sigma 15 on every channel (the re-scan benchmark's worst) made one
    paper pixel in ten ink, and the outline was filled out to them (IoU with the clean one
    0.61-0.77); a clean drawing's ink is what it was (every pixel darker than INK)."""
    rng = np.random.default_rng(5)
    for design in make_designs(4, seed=3):
        img, clean = draw_side(design, "front"), _canvas(design)
        assert np.array_equal(ink_mask(clean), (clean < INK).any(-1))
        arr = np.asarray(img, np.float32) + rng.normal(0.0, 15.0, (img.height, img.width, 3))
        noisy = to_canvas(Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8)), trim=True)
        a, b = _inside(clean), _inside(noisy)
        assert (a & b).sum() / (a | b).sum() > 0.98, design.garment
        assert np.sqrt(np.mean((proportions(noisy) - proportions(clean)) ** 2)) < 0.01


def test_proportions_are_the_fourth_appearance_block_and_an_empty_outline_is_zeros():
    design = make_designs(4, seed=5)[2]
    canvas = _canvas(design, "back")
    row = appearance(canvas[None], 4)[0]
    assert np.array_equal(row[-PROPORTION_DIMS:], proportions(canvas))
    assert np.array_equal(appearance(canvas[None], 3)[0], row[:-PROPORTION_DIMS])
    assert not proportions(np.full((224, 224, 3), 255, np.uint8)).any()


def _whitened(seed: int = 0, n: int = 30):
    """A whitening with silhouette and colour blocks and a raw block of proportions."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, MODEL + SIL + COL + PROPORTION_DIMS)).astype(np.float32)
    x[:, -PROPORTION_DIMS:] = rng.normal(0, 0.2, (n, PROPORTION_DIMS))
    blocks = ((SIL, 0.5), (COL, 0.4), (PROPORTION_DIMS, 0.0))
    return learn_whitening(x, 8, blocks=blocks), x


def test_a_raw_block_is_kept_as_measured_after_the_unit_row_and_no_dot_product_sees_it():
    w, x = _whitened()
    y = w.apply(x)
    raw = w.raw_columns()
    assert (raw.start, raw.stop) == (w.dim - PROPORTION_DIMS, w.dim)
    assert np.allclose(y[:, raw] / RAW_SCALE, x[:, -PROPORTION_DIMS:], atol=1e-6)
    assert np.allclose(np.linalg.norm(y[:, :raw.start], axis=1), 1.0, atol=1e-6)
    without = learn_whitening(x[:, :-PROPORTION_DIMS], 8, blocks=((SIL, 0.5), (COL, 0.4)))
    plain = without.apply(x[:, :-PROPORTION_DIMS])
    assert np.abs(y @ y.T - plain @ plain.T).max() < 1e-5
    outline = w.outline_only(y)
    assert np.array_equal(outline[:, raw], y[:, raw])  # a sketch's proportions are compared too
    assert without.raw_columns() is None
    with pytest.raises(ValueError, match="after every weighted block"):
        learn_whitening(x, 8, blocks=((SIL, 0.5), (PROPORTION_DIMS, 0.0), (COL, 0.4)))


def test_the_bonus_compares_the_proportions_and_an_identical_pair_still_scores_one():
    w, x = _whitened(1)
    y = w.apply(x)
    plain = ExactMatch(0.9, 0.4, 0.8, 0.2)
    with_fit, without = EXACT.scores(w, y, y[3]), plain.scores(w, y, y[3])
    assert np.isclose(with_fit[3], 1.0, atol=1e-5)
    d2 = np.mean((x[:, -PROPORTION_DIMS:] - x[3, -PROPORTION_DIMS:]) ** 2, axis=1)
    fit = 0.2 * np.exp(-d2 / 0.015 ** 2)
    assert np.allclose(with_fit, (without * 1.6 + fit) / 1.8, atol=1e-5)
    assert np.isclose(EXACT.total(w), 1.8) and np.isclose(plain.total(w), 1.6)
    outline = w.outline_only(y[4:5])[0]  # a line sketch: its outline, plainly, and the fit
    d2 = np.mean((x[:, -PROPORTION_DIMS:] - x[4, -PROPORTION_DIMS:]) ** 2, axis=1)
    assert np.allclose(EXACT.scores(w, y, outline),
                       (y @ outline + 0.2 * np.exp(-d2 / 0.015 ** 2)) / 1.2, atol=1e-5)


def test_a_side_matched_by_its_outline_is_never_flagged_as_a_side_copy():
    """With the proportions a sketch's side can score and lead enough for `near-duplicate`
    searched alone; an outline tells a garment's cut, not its design (the review of
    2026-12-06)."""
    from types import SimpleNamespace

    from worker.core.bank import FeatureBank
    from worker.pipeline.sides import side_copies

    w, x = _whitened(4)
    y = w.apply(x)
    bank = FeatureBank(y, y, {"exact_match": EXACT.to_manifest()}, w)
    catalogue = SimpleNamespace(names=[f"d{i}" for i in range(len(y))])
    anything = {"copy": -9.0, "near-duplicate": -9.5, "similar": -9.8, "floor": -10.0}
    queries = (y[3], w.outline_only(y[5:6])[0])
    flagged = side_copies(bank, catalogue, queries, 0.5, False, None, anything)
    assert [c.side for c in flagged] == ["front", "back"]
    flagged = side_copies(bank, catalogue, queries, 0.5, False, None, anything, (False, True))
    assert [(c.side, c.name) for c in flagged] == [("front", "d3")]


def test_a_query_sides_filled_outline_is_measured_once_for_its_three_uses(monkeypatch):
    """The upright check, the appearance columns and the sketch test each read the filled
    outline of the same canvas, and the crop reading its ink: each is measured once (kept by
    content), shared read-only, and a canvas with other pixels gets its own."""
    from worker.pipeline import appearance as ap
    from worker.pipeline.crops import cropped

    spans, span = [], ap._span
    inks, ink_mask = [], ap.ink_mask
    monkeypatch.setattr(ap, "_span", lambda ink: spans.append(1) or span(ink))
    monkeypatch.setattr(ap, "ink_mask", lambda canvas: inks.append(1) or ink_mask(canvas))
    ap._inside_of.cache_clear()
    ap._ink_of.cache_clear()
    canvases = np.stack([_canvas(d) for d in make_designs(2, seed=3)])
    fresh = canvases.copy()  # a search's canvases are new arrays with the same pixels
    for canvas in canvases:
        ap.silhouette(canvas)
    ap.appearance(fresh, 4)
    ap.sketched(tuple(canvases))
    kept = ap._ink_of.cache_info()
    assert cropped(tuple(fresh)) == (False, False)
    reused = ap._ink_of.cache_info()  # the crop reading's two sides: kept masks, none new
    assert (reused.hits, reused.misses) == (kept.hits + 2, kept.misses)
    assert len(spans) == 2 * 2  # rows and columns, once for each of the two canvases
    assert len(inks) == 2 and not ap.drawn_ink(fresh[0]).flags.writeable
    inside = ap._inside(fresh[0])
    assert not inside.flags.writeable
    other = fresh[0].copy()
    other[100:110, :] = 255  # a band of paper across the garment
    assert not np.array_equal(ap._inside(other), inside) and len(spans) == 2 * 3
