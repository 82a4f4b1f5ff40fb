"""Line sketches of the flat: told from coloured drawings, and matched by their outline alone
in a catalogue of coloured drawings (never in one of sketches)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks.lookalike_edits import lineart
from worker.core.bank import FeatureBank
from worker.core.whitening import learn_whitening
from worker.dev.sample import draw_side, make_designs
from worker.pipeline.appearance import (
    BLOCKS,
    SKETCH_COVERAGE,
    SKETCH_HUES,
    SKETCH_TEST,
    coverage,
    hue_share,
    is_sketch,
)
from worker.pipeline.preprocess import to_canvas
from worker.pipeline.ranking import project_query
from worker.pipeline.reading import DRAWN_ALIKE, _nearest_whole, copied_whole, outline_sides

DESIGNS = make_designs(8, 7)


def test_a_sketch_is_told_from_a_coloured_drawing():
    rng = np.random.default_rng(0)
    for design in DESIGNS:
        coloured = to_canvas(draw_side(design, "front"), True)
        sketch = to_canvas(lineart(design, "front", rng), True)
        assert coverage(coloured) > 0.9 and not is_sketch(coloured)
        assert coverage(sketch) < 0.3 and is_sketch(sketch)


def test_a_white_garment_with_a_print_in_colour_is_not_a_sketch():
    """Coloured in under half its outline, a white garment reads as a sketch by its coverage;
    a logo in colour makes it a coloured drawing, one in black leaves it an empty garment.
    A sketch has no colour filling an area: scanned on tinted paper, or drawn in blue ink."""
    import dataclasses

    from benchmarks.quality import paper

    design = DESIGNS[0]  # a t-shirt with a circle logo
    for logo, sketch in (((180, 50, 50), False), ((25, 25, 30), True)):
        white = dataclasses.replace(design, colour=(255, 255, 255), pattern="plain",
                                    back_pattern="plain", logo_colour=logo)
        canvas = to_canvas(draw_side(white, "front"), True)
        assert coverage(canvas) < SKETCH_COVERAGE and is_sketch(canvas) is sketch
        assert (hue_share(canvas) > SKETCH_HUES) is not sketch
    rng = np.random.default_rng(2)
    for d in DESIGNS:
        assert hue_share(to_canvas(paper(lineart(d, "back", rng), rng), True)) == 0.0
        inked = np.asarray(lineart(d, "back", rng), np.float32)  # drawn in blue ballpoint
        dark = 1 - inked.min(axis=2, keepdims=True) / 255
        inked = 255 * (1 - dark) + dark * np.array([30, 60, 200], np.float32)
        canvas = to_canvas(Image.fromarray(inked.round().astype(np.uint8)), True)
        assert is_sketch(canvas), d.name  # coloured lines fill no area


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


def test_a_sketch_is_compared_whole_only_where_its_nearest_drawing_is_also_cut_as_it():
    """A sketch-like side near a catalogue drawing whole (a white garment's copy reads as a
    sketch) is compared whole where that drawing is also its best outline match: a filed
    sketch of another design is near every sketch of its garment whole, and cut otherwise. A
    side also read as a crop (its outline is its frame's) is taken at its nearness alone."""
    bank, raw = bank_of(0.0)
    start = raw.shape[1] - sum(BLOCKS)
    silhouette = slice(start, start + BLOCKS[0])
    recut = raw[0].copy()  # row 0's drawing, its outline nearer row 1's
    recut[silhouette] = 0.45 * raw[0][silhouette] + 0.55 * raw[1][silhouette]
    cosine, _, nearest = _nearest_whole(bank, recut)
    assert cosine >= DRAWN_ALIKE and nearest == 0
    assert copied_whole(bank, raw[0]) and not copied_whole(bank, recut)
    assert outline_sides(bank, (True, True), (raw[0], recut)) == (False, True)
    assert outline_sides(bank, (True, True), (raw[0], recut), (False, True)) == (False, False)


def test_among_sketches_or_with_an_older_index_a_sketch_is_compared_whole():
    assert outline_sides(bank_of(0.8)[0], (True, True)) == (False, False)
    assert outline_sides(bank_of(None)[0], (True, True)) == (False, False)


def test_the_build_s_chunks_record_which_drawings_are_sketches(tmp_path, monkeypatch, caplog):
    """`pair_sketches` reads each drawing's flag from the chunk cache; a chunk written before
    the flags has its images decoded once and the flags written into it (its rows kept), and
    a repack of the cache carries them."""
    from worker.core.catalogue import load_catalogue, write_catalogue_csv
    from worker.indexing import sketches
    from worker.indexing.chunkcache import ChunkCache
    from worker.indexing.chunks import hash_images

    (tmp_path / "db" / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names, fronts, backs = [], [], []
    for i, design in enumerate(DESIGNS[:3]):
        for side, paths in (("front", fronts), ("back", backs)):
            drawn = lineart(design, side, rng) if i == 1 else draw_side(design, side)
            drawn.save(tmp_path / "db" / "images" / f"{design.name}_{side}.png")
            paths.append(f"images/{design.name}_{side}.png")
        names.append(design.name)
    write_catalogue_csv(tmp_path / "db", names, fronts, backs)
    catalogue = load_catalogue(tmp_path / "db")
    hashes, _ = hash_images(catalogue, fronts + backs)
    contents = list(dict.fromkeys(hashes.values()))
    rows = np.arange(len(contents) * 4, dtype=np.float32).reshape(-1, 4)
    cache = ChunkCache(tmp_path / "features", "model")
    cache.write("old", contents, rows)  # a chunk from before the flags
    assert cache.sketches(set(contents)) == {}

    flags, share = sketches.pair_sketches(catalogue, hashes, cache, 40_000_000, True)
    assert flags.tolist() == [[False, False], [True, True], [False, False]]
    assert share == round(2 / len(contents), 3)
    assert cache.sketches(set(contents)) == {hashes[p]: p in (fronts[1], backs[1])
                                             for p in fronts + backs}
    np.testing.assert_array_equal(cache.rows(set(contents), 4)[contents[-1]], rows[-1])
    assert "unreadable" not in caplog.text  # a chunk without flags is not a damaged one

    def decoded(*args):
        raise AssertionError("read from the cache, not decoded again")

    monkeypatch.setattr(sketches, "read_sketches", decoded)
    assert sketches.pair_sketches(catalogue, hashes, cache, 40_000_000, True)[0].tolist() == \
        flags.tolist()
    used = {hashes[fronts[1]], hashes[backs[0]]}
    cache.prune(used, 4, chunk_images=1)  # repacked into chunks of one
    assert cache.sketches(set(contents)) == {hashes[fronts[1]]: True, hashes[backs[0]]: False}

    from worker.indexing import chunkcache  # flags another sketch test gave are not known

    older = ChunkCache(tmp_path / "older", "model")
    monkeypatch.setattr(chunkcache, "SKETCH_TEST", "coverage < 0.5")
    older.write("old", contents, rows, np.zeros(len(contents), np.int8))
    assert older.sketches(set(contents)) == dict.fromkeys(contents, False)
    monkeypatch.setattr(chunkcache, "SKETCH_TEST", SKETCH_TEST)
    assert older.sketches(set(contents)) == {}
