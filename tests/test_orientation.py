"""A drawing scanned sideways is turned upright before the search (worker/pipeline/orientation.py):
the catalogue's own silhouettes say which way is up. Real index, real model, real worker."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.http import post_pair
from tests.images import N_PAIRS, design_pair, unrelated_drawing
from worker.core.bank import FeatureBank, load_generation
from worker.pipeline.appearance import silhouette
from worker.pipeline.orientation import Uprights, split
from worker.pipeline.preprocess import make_canvas, query_canvas

pytestmark = pytest.mark.slow


def turned(png: bytes, degrees: int) -> bytes:
    """The drawing as a scanner fed the page the other way would give it: no EXIF to undo it."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).rotate(degrees, expand=True).save(buffer, "PNG")
    return buffer.getvalue()


def same_outline(canvas: np.ndarray, upright: np.ndarray) -> bool:
    """The turned canvas is the upright one, up to the re-sampling of the scan (a pixel's
    offset moves a stripe, not the outline)."""
    return float(np.abs(silhouette(canvas) - silhouette(upright)).mean()) < 0.03


@pytest.fixture(scope="module")
def uprights(features_dir, catalogue_dir) -> Uprights:
    _, bank, _ = load_generation(catalogue_dir, features_dir)
    found = Uprights.of(bank)
    assert found is not None and found.shapes.shape == (2 * len(bank), 144)
    return found


def test_every_sample_drawing_is_kept_upright_and_turned_back_when_sideways(uprights):
    for i in range(N_PAIRS):
        for png in design_pair(i, N_PAIRS):
            upright = make_canvas(png, trim=True)
            canvas, degrees = uprights.upright(upright)
            assert degrees == 0 and canvas is upright, i
            for scanned, back in ((90, 270), (270, 90)):
                canvas, degrees = uprights.upright(make_canvas(turned(png, scanned), trim=True))
                assert degrees == back, (i, scanned)
                assert same_outline(canvas, upright), (i, scanned)


def test_a_turned_canvas_has_its_silhouette_turned():
    for i in (0, 5, 13):
        canvas = make_canvas(design_pair(i, N_PAIRS)[1], trim=True)
        cells = silhouette(canvas).reshape(12, 12)
        for k in (1, 3):
            np.testing.assert_allclose(silhouette(np.rot90(canvas, k)).reshape(12, 12),
                                       np.rot90(cells, k), atol=1.01 / 255)  # its rounding


def test_a_side_searched_by_a_box_is_left_as_given(uprights):
    sideways = turned(design_pair(3, N_PAIRS)[0], 90)
    assert query_canvas(sideways, 10**7, True, None, "front", uprights)[1] == 270
    canvas, degrees = query_canvas(sideways, 10**7, True, (0.0, 0.0, 1.0, 1.0), "front", uprights)
    assert degrees == 0 and np.array_equal(canvas, make_canvas(sideways, trim=True))


def test_a_sheet_with_notes_scanned_sideways_is_prepared_again_the_way_it_then_lies(uprights):
    from benchmarks.sheets import noted

    png = design_pair(9, N_PAIRS)[0]
    page = noted(Image.open(io.BytesIO(png)).convert("RGB"), np.random.default_rng(3))
    for scale in (1, 6):  # as drawn, and a large scan (prepared again from a reduced copy)
        big = page.resize((page.width * scale, page.height * scale), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        big.rotate(90, expand=True).save(buffer, "PNG")
        sideways = make_canvas(buffer.getvalue(), trim=True)
        assert uprights.upright(sideways)[1] == 0  # its notes lie above it: the trim kept them
        canvas, degrees = query_canvas(buffer.getvalue(), 10**8, True, None, "front", uprights)
        assert degrees == 270 and same_outline(canvas, make_canvas(png, trim=True)), scale


def test_a_new_design_like_no_catalogue_garment_is_left_as_given(uprights):
    for seed in range(6):  # scattered shapes: no outline to match, as given or turned
        png = unrelated_drawing(seed)
        canvas, degrees = query_canvas(png, 10**7, True, None, "front", uprights)
        assert degrees == 0 and np.array_equal(canvas, make_canvas(png, trim=True)), seed


def test_a_bank_without_a_silhouette_block_turns_nothing():
    from worker.core.whitening import Whitening

    rows = np.eye(3, 8, dtype=np.float32)
    assert Uprights.of(FeatureBank(rows, rows, {}, whitening=None)) is None
    plain = Whitening(np.zeros(8, np.float32), np.eye(8, dtype=np.float32))  # no blocks
    assert Uprights.of(FeatureBank(rows, rows, {}, whitening=plain)) is None
    blocked = Whitening(np.zeros(4, np.float32), np.eye(4, dtype=np.float32),
                        np.zeros(4, np.float32), ((4, 0.5),))
    empty = np.zeros((0, 8), np.float32)
    assert Uprights.of(FeatureBank(empty, empty, {}, whitening=blocked)) is None
    assert Uprights.of(FeatureBank(rows, rows, {}, whitening=blocked)) is not None
    canvas = np.full((224, 224, 3), 255, np.uint8)
    assert split([(canvas, 0), (None, 0)]) == ((canvas, None), (0, 0))
    png = turned(design_pair(3, N_PAIRS)[0], 90)
    assert query_canvas(png, 10**7, True, None, "front", None)[1] == 0


def test_a_sideways_scan_is_found_through_the_api_and_says_it_was_turned(
        indexed_client, run_worker, indexed_settings):
    front, back = design_pair(5, N_PAIRS)
    sideways = post_pair(indexed_client, turned(front, 90), turned(back, 270)).get_json()
    upright = post_pair(indexed_client, front, back).get_json()
    run_worker()

    found = indexed_client.get(sideways["url"]).get_json()
    assert found["status"] == "finished", found
    assert found["turned"] == {"front": 270, "back": 90}
    first = found["results"][0]
    assert first["name"] == "dress-0005" and first["verdict"] == "copy"
    as_given = indexed_client.get(upright["url"]).get_json()
    assert as_given["turned"] == {} and as_given["results"][0]["name"] == "dress-0005"
    # the query kept for match views is the drawing as searched: upright
    kept = Image.open(indexed_settings.output_dir / f"{sideways['id']}-query-front.png")
    assert kept.size == (224, 224)
    assert same_outline(np.asarray(kept), make_canvas(front, trim=True))
    page = indexed_client.get(f"/searches/{sideways['id']}").get_data(as_text=True)
    assert "the front was scanned sideways: turned a quarter to the right" in page
    assert "the back was scanned sideways: turned a quarter to the left" in page
    assert 'id="turned"' not in indexed_client.get(f"/searches/{upright['id']}").get_data(
        as_text=True)


def test_a_collection_design_scanned_sideways_is_turned(indexed_settings, extractor, redis):
    from worker.core.contract import SearchOptions
    from worker.service.checks import check_pairs
    from worker.service.process import start_engine

    engine = start_engine(indexed_settings, extractor)
    front, back = design_pair(13, N_PAIRS)
    ranked = check_pairs(engine, [(turned(front, 270), back), (front, None)], SearchOptions())
    assert ranked[0].turned == {"front": 90} and ranked[0].hits[0].name == "dress-0013"
    assert ranked[1].turned == {}
    assert ranked[0].design("new").turned == {"front": 90}


def test_searches_batched_or_read_ahead_keep_each_its_own_turn(indexed_client, run_worker,
                                                               indexed_settings):
    import dataclasses

    # the first search's pass takes the next three from the queue; the fifth is read ahead
    turns = [(0, 0), (90, 0), (0, 270), (0, 0), (270, 90)]
    ids = []
    for design, (front_turn, back_turn) in zip((5, 6, 7, 8, 9), turns, strict=True):
        front, back = design_pair(design, N_PAIRS)
        ids.append(post_pair(indexed_client, turned(front, front_turn),
                             turned(back, back_turn)).get_json()["url"])
    run_worker(dataclasses.replace(indexed_settings, batch_size=4))
    found = [indexed_client.get(url).get_json() for url in ids]
    assert ["forward_ms" in r["timings"] for r in found] == [True, False, False, False, False]
    assert [r["turned"] for r in found] == [{}, {"front": 270}, {"back": 90}, {},
                                            {"front": 90, "back": 270}]
    assert [r["results"][0]["name"][-2:] for r in found] == ["05", "06", "07", "08", "09"]
