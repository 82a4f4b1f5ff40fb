"""The grid renderer: labels are matplotlib's own glyphs, the layout holds, output is JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.ft2font import FT2Font
from PIL import Image

from worker.pipeline.render import (
    CELL_H,
    CELL_W,
    CELLS_PER_ROW,
    GAP,
    LABEL,
    THUMB,
    GlyphFont,
    GridCell,
    GridRenderer,
    render_grid,
)


@pytest.mark.parametrize("text", ["#12  trousers-0042", "0.873  (F 0.912 | B 0.834 swapped)",
                                  "Query", "front | back", "gjpqy()[]{}|/\\_-…"])
def test_glyph_by_glyph_label_equals_matplotlib_whole_string(text):
    font = GlyphFont("bold", 9.5)
    reference = FT2Font(font._font.fname)
    reference.set_size(9.5, 100)
    reference.set_text(text, 0.0)
    reference.draw_glyphs_to_bitmap(antialiased=True)
    whole = np.asarray(reference.get_image())
    composed = font.coverage(text)
    # same ink, same place: compare the inked boxes (the two images differ only in padding)
    def ink(a):
        rows, cols = np.flatnonzero(a.any(1)), np.flatnonzero(a.any(0))
        return a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    assert np.array_equal(ink(composed), ink(whole))


def test_a_name_with_decomposed_accents_is_drawn_as_its_composed_letters():
    """Names copied from macOS file names hold `e` + U+0301: drawn as a dotted circle beside
    the `e`, and wider than the precomposed `é`."""
    font = GlyphFont("bold", 9.5)
    composed, decomposed = "café-Ñandú", "cafe\u0301-N\u0303andu\u0301"
    assert np.array_equal(font.coverage(decomposed), font.coverage(composed))
    assert font.fit(decomposed, 1000) == composed


def test_long_names_are_cut_with_an_ellipsis():
    font = GlyphFont("normal", 8.5)
    cut = font.fit("x" * 200, 100)
    assert cut.endswith("…") and font.width(cut) <= 100 and font.fit("short", 100) == "short"
    assert len(cut) > 1 and font.width("x" * len(cut) + "…") > 100  # the longest cut that fits
    # a filtered search's query label names every value: cut in one pass (one character at a
    # time, re-measured whole, took minutes at 50,000 characters)
    label = "among sku:" + ",".join(f"SKU-{i:05d}" for i in range(5000))
    looked_up, glyph = [], font.glyph
    font.glyph = lambda char: looked_up.append(char) or glyph(char)
    cut = font.fit(label, 300)
    del font.glyph
    assert len(looked_up) < 2 * len(label) + 10  # one pass (cut a character at a time: n²/2)
    assert label.startswith(cut[:-1]) and font.width(cut) <= 300 < font.width(
        label[:len(cut)] + "…")


def test_the_renderer_keeps_the_empty_pages_of_a_few_grid_sizes_only():
    """One page a grid size was kept for the worker's life: every k from 1 to 100 drawn once
    kept about 1 GiB."""
    from worker.pipeline.render import PAGES_KEPT

    renderer = GridRenderer()
    for n in range(1, 12):
        renderer.pixels(_cells(n))
    assert list(renderer._pages) == list(range(12 - PAGES_KEPT, 12))
    renderer.pixels(_cells(8))  # the size drawn last is kept longest
    renderer.pixels(_cells(2))
    assert list(renderer._pages) == [10, 11, 8, 2]


def test_a_character_the_font_lacks_is_drawn_as_the_replacement_mark():
    """A catalogue name in a script DejaVu does not cover (pairs.csv allows any) once failed
    the whole search at its render."""
    font = GlyphFont("bold", 9.5)
    assert np.array_equal(font.coverage("デザイン"), font.coverage("\ufffd" * 4))
    query, hit = _cells(2)
    cells = [query, GridCell(hit.front, hit.back, "#1  Ünïcödé—デザイン 😀", "copy · 100")]
    assert Image.open(io.BytesIO(render_grid(cells))).format == "JPEG"


def _cells(n: int) -> list[GridCell]:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)  # a query canvas: shrunk
    small = rng.integers(0, 255, (150, 100, 3), dtype=np.uint8)  # a portrait thumbnail
    return [GridCell(big, big, "Query", "front | back")] + [
        GridCell(small, small, f"#{i}  design-{i:04d}", "0.500  (F 0.500 | B 0.500)")
        for i in range(1, n)]


@pytest.mark.parametrize("n", [1, 6, 21])
def test_grid_is_a_jpeg_with_one_cell_per_pair(n):
    cells = _cells(n)
    grid = Image.open(io.BytesIO(render_grid(cells)))
    rows = -(-n // CELLS_PER_ROW)
    assert grid.format == "JPEG" and grid.size == (CELLS_PER_ROW * CELL_W, rows * CELL_H)
    pixels = GridRenderer().pixels(cells)
    for i, cell in enumerate(cells[1:], start=1):  # every hit in its own cell, both sides
        for j, side in enumerate((cell.front, cell.back)):
            left = (i % CELLS_PER_ROW) * CELL_W + GAP + j * (THUMB + GAP) + (THUMB - 100) // 2
            top = (i // CELLS_PER_ROW) * CELL_H + LABEL
            assert np.array_equal(pixels[top:top + 150, left:left + 100], side), (i, j)


def test_thumbnails_are_pasted_unscaled_and_labels_drawn():
    renderer = GridRenderer()
    cells = _cells(2)
    pixels = renderer.pixels(cells)
    page = renderer.page(2)
    # the hit's 100-px wide thumbnail sits centred in its 150-px slot, pixel for pixel
    x0, y0 = CELL_W, 0
    left, top = x0 + GAP + (THUMB - 100) // 2, y0 + LABEL
    assert np.array_equal(pixels[top:top + 150, left:left + 100], cells[1].front)
    label_band = pixels[y0 + 4:y0 + LABEL - 4, x0 + GAP:x0 + CELL_W - GAP]
    assert (label_band < 128).any(), "the label was drawn"
    assert not np.array_equal(page, pixels) and np.array_equal(page, GridRenderer().page(2)), \
        "the cached page is not drawn on"


def test_copies_and_near_duplicates_are_framed_in_their_colour_and_the_rest_are_not():
    from dataclasses import replace

    from worker.pipeline.render import VERDICT_FRAMES

    cells = _cells(4)
    cells[1], cells[2], cells[3] = (replace(cells[1], verdict="copy"),
                                    replace(cells[2], verdict="near-duplicate"),
                                    replace(cells[3], verdict="similar"))
    pixels = GridRenderer().pixels(cells)
    for i, verdict in ((1, "copy"), (2, "near-duplicate"), (3, "similar")):
        x0 = i * CELL_W
        edge = pixels[CELL_H // 2, x0 + 2:x0 + 4].astype(int)  # the cell's left border
        if verdict in VERDICT_FRAMES:
            assert np.abs(edge - VERDICT_FRAMES[verdict][0]).max() < 10, (verdict, edge)
        else:
            assert (edge > 200).all(), edge  # the plain light-grey frame


def test_a_hits_score_line_leads_with_its_verdict_and_similarity():
    from worker.core.contract import Hit
    from worker.pipeline.grid import score_line

    hit = Hit(rank=1, name="a", score=0.912, front_score=0.95, back_score=None, swapped=True,
              front="f.png", back="b.png", verdict="copy", similarity=93)
    assert score_line(hit) == "back | front · copy 93  0.912 (F 0.950)"
    plain = hit.model_copy(update={"verdict": None, "similarity": 12, "swapped": False})
    assert score_line(plain) == "similarity 12  0.912 (F 0.950)"  # as the page's column
    unjudged = plain.model_copy(update={"similarity": None})  # a sketch, or no thresholds
    assert score_line(unjudged) == "0.912 (F 0.950)"


def test_the_query_cell_says_which_designs_a_filtered_search_compared():
    from worker.pipeline.grid import grid_cells

    canvas = np.full((224, 224, 3), 255, np.uint8)
    query, = grid_cells(None, None, None, (canvas, None), [])
    assert query.subtitle == "front"
    query, = grid_cells(None, None, None, (canvas, canvas), [],
                        {"garment": ["dress", "jacket"], "season": ["SS26"]})
    assert query.subtitle == "front | back · among garment:dress,jacket; season:SS26"


def test_the_query_cell_says_when_the_list_after_the_copy_is_in_order_of_design():
    from worker.pipeline.grid import grid_cells
    from worker.pipeline.render import CELL_W, GAP, GridRenderer

    canvas = np.full((224, 224, 3), 255, np.uint8)
    assert grid_cells(None, None, None, (canvas, canvas), [])[0].title == "Query"
    query, = grid_cells(None, None, None, (canvas, canvas), [], order="design")
    assert query.title == "Query · the rest in order of design"
    font = GridRenderer().title_font
    assert font.fit(query.title, CELL_W - 2 * GAP) == query.title  # drawn whole, not cut short


def test_a_hit_matched_with_its_sides_swapped_is_drawn_back_then_front(tmp_path):
    """Each matched side sits under the query's side it matched, as the match view pairs
    them; the label says so first."""
    from PIL import Image

    from worker.core.catalogue import load_catalogue
    from worker.core.contract import Hit
    from worker.pipeline.grid import grid_cells
    from worker.pipeline.thumbnails import ThumbnailCache

    for name, colour in (("f.png", (220, 30, 30)), ("b.png", (30, 30, 220))):
        Image.new("RGB", (60, 80), colour).save(tmp_path / name)
    (tmp_path / "pairs.csv").write_text("name,front,back\ntee,f.png,b.png\n")
    catalogue = load_catalogue(tmp_path)
    canvas = np.full((224, 224, 3), 255, np.uint8)
    hit = Hit(rank=1, name="tee", score=0.9, front_score=0.9, back_score=0.9, swapped=True,
              front="f.png", back="b.png", verdict="copy", similarity=93)
    for swapped, (left, right) in ((True, (2, 0)), (False, (0, 2))):
        _, cell = grid_cells(catalogue, tmp_path / "features", ThumbnailCache(1 << 20),
                             (canvas, canvas), [hit.model_copy(update={"swapped": swapped})])
        middle = (slice(30, 50), slice(20, 40))
        assert np.argmax(cell.front[middle].mean(axis=(0, 1))) == left  # blue (2), red (0)
        assert np.argmax(cell.back[middle].mean(axis=(0, 1))) == right
        assert cell.subtitle.startswith("back | front · ") is swapped
