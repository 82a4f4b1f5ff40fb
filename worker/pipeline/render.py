"""Stage 4: render the query pair and its hits as one grid JPEG, drawn by matplotlib.

Drawn so that nothing is laid out twice (timings in docs/performance.md):
- the page (cell frames, the query's blue frame) is a matplotlib Figure drawn once per grid
  size and kept as pixels;
- labels are rasterised by matplotlib's own FreeType renderer (`matplotlib.ft2font`), one
  glyph at a time, each glyph once per process, at whole-pixel pens and not kerned: the
  composed label is pixel-identical to what `FT2Font.set_text` + `draw_glyphs_to_bitmap`
  give for the whole string where that kerns nothing (tested), and kerned pairs (`To`, `AV`)
  stand 1-4 px wider; names are drawn in NFC (a decomposed `é` as one letter), left to right
  (a right-to-left name's letters in stored order), in DejaVu Sans (other scripts as `�`);
- thumbnails are pasted 1:1, so nothing is resampled at render time but the query; labels
  are blended through their coverage as a mask, both by Pillow in C.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Rectangle
from PIL import Image, ImageDraw

from worker.core.catalogue import THUMB_PX
from worker.core.contract import GRID_COLUMNS

THUMB = THUMB_PX  # px, one side of one drawing
GAP = 8  # px between the two drawings of a pair and between cells
LABEL = 40  # px of text above each pair
CELLS_PER_ROW = GRID_COLUMNS
DPI = 100
JPEG_QUALITY = 85
PAGES_KEPT = 4  # empty pages of the grid sizes drawn last (k=100: 19 MiB each)
CELL_W, CELL_H = 2 * THUMB + 3 * GAP, THUMB + LABEL + GAP
QUERY_COLOUR = (40, 110, 200)
TITLE_COLOUR = (34, 34, 34)
SUBTITLE_COLOUR = (68, 68, 68)
FRAME_COLOUR = "#e4e4e4"
VERDICT_FRAMES = {"copy": ((200, 30, 30), 4), "near-duplicate": ((230, 130, 20), 3)}  # colour, px


@dataclass(frozen=True)
class GridCell:
    """One pair on the grid: two (h, w, 3) uint8 images and two lines of label."""

    front: np.ndarray
    back: np.ndarray
    title: str
    subtitle: str
    verdict: str | None = None  # a copy or near-duplicate is framed in its colour


@dataclass(frozen=True)
class _Glyph:
    ink: np.ndarray  # (h, w) uint8 coverage, cropped to the ink
    left: int  # px from the pen position to the ink's left edge
    top: int  # px from the baseline up to the ink's top edge
    advance: int  # px the pen moves after this glyph


MISSING = "\ufffd"  # drawn for a character the font has no glyph for (DejaVu has this one)


class GlyphFont:
    """One font at one size; glyphs rasterised by matplotlib's FreeType renderer on first use."""

    def __init__(self, weight: str, size_pt: float, dpi: int = DPI):
        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                                 weight=weight))
        self._font = FT2Font(path)
        self._font.set_size(size_pt, dpi)
        self.ascent = math.ceil(self._font.ascender * size_pt * dpi / 72 / self._font.units_per_EM)
        self.height = self.ascent + math.ceil(
            -self._font.descender * size_pt * dpi / 72 / self._font.units_per_EM)
        self._glyphs: dict[str, _Glyph] = {}

    def glyph(self, char: str) -> _Glyph:
        found = self._glyphs.get(char)
        if found is None and char != MISSING and not self._font.get_char_index(ord(char)):
            found = self._glyphs[char] = self.glyph(MISSING)  # a name in a script it lacks
        if found is None:
            self._font.set_text(char, 0.0)  # one renderer per worker process, one thread
            self._font.draw_glyphs_to_bitmap(antialiased=True)
            image = np.asarray(self._font.get_image())
            metrics = self._font.load_char(ord(char))
            rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
            ink = (image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy() if rows.size
                   else np.zeros((0, 0), np.uint8))
            found = _Glyph(ink, round(metrics.horiBearingX / 64), round(metrics.horiBearingY / 64),
                           round(metrics.horiAdvance / 64))
            self._glyphs[char] = found
        return found

    def width(self, text: str) -> int:
        return sum(self.glyph(c).advance for c in text)

    def fit(self, text: str, max_width: int) -> str:
        """`text` in NFC (as `coverage` draws it), cut and ended with an ellipsis where it
        would be wider than `max_width`."""
        text = unicodedata.normalize("NFC", text)
        if self.width(text) <= max_width:
            return text
        room, kept = max_width - self.width("…"), 0  # one pass: a label may be 50,000 chars
        for char in text:
            room -= self.glyph(char).advance
            if room < 0:
                break
            kept += 1
        return text[:kept] + "…"

    def coverage(self, text: str) -> np.ndarray:
        """(height, width) uint8 coverage of `text` on one line (overlapping ink OR-ed, as
        matplotlib's FT2Image does), in NFC: a decomposed letter and accent as one letter."""
        text = unicodedata.normalize("NFC", text)
        out = np.zeros((self.height, max(1, self.width(text))), np.uint8)
        pen = 0
        for char in text:
            g = self.glyph(char)
            if g.ink.size:
                y, x = max(0, self.ascent - g.top), max(0, pen + g.left)
                region = out[y:y + g.ink.shape[0], x:x + g.ink.shape[1]]
                np.bitwise_or(region, g.ink[:region.shape[0], :region.shape[1]], out=region)
            pen += g.advance
        return out


def _cell_origin(i: int) -> tuple[int, int]:
    """Top-left pixel (x, y) of cell i."""
    return (i % CELLS_PER_ROW) * CELL_W, (i // CELLS_PER_ROW) * CELL_H


def _fit_into(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> at most THUMB x THUMB, aspect kept (catalogue thumbnails already are)."""
    if image.shape[0] <= THUMB and image.shape[1] <= THUMB:
        return image
    img = Image.fromarray(image)
    img.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
    return np.asarray(img)


class GridRenderer:
    """Keeps fonts, glyphs and one page per grid size; `render` returns the JPEG bytes."""

    def __init__(self) -> None:
        self.title_font = GlyphFont("bold", 9.5)
        self.subtitle_font = GlyphFont("normal", 8.5)
        self._pages: OrderedDict[int, np.ndarray] = OrderedDict()

    def page(self, n_cells: int) -> np.ndarray:
        """The empty page for `n_cells` cells, drawn by a matplotlib Figure and kept while it
        is among the PAGES_KEPT sizes drawn last (one a size kept 1 GiB once every k was)."""
        if n_cells in self._pages:
            self._pages.move_to_end(n_cells)
        else:
            width = CELLS_PER_ROW * CELL_W
            height = math.ceil(n_cells / CELLS_PER_ROW) * CELL_H
            fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
            canvas = FigureCanvasAgg(fig)
            ax = fig.add_axes((0, 0, 1, 1), xlim=(0, width), ylim=(height, 0))
            ax.set_axis_off()
            for i in range(n_cells):
                x, y = _cell_origin(i)
                ax.add_patch(Rectangle((x + 2, y + 2), CELL_W - 4, CELL_H - 4, fill=False,
                                       edgecolor=FRAME_COLOUR, linewidth=1))
            qx, qy = _cell_origin(0)
            ax.add_patch(Rectangle((qx + GAP - 3, qy + LABEL - 3), 2 * THUMB + GAP + 6, THUMB + 6,
                                   facecolor=np.array(QUERY_COLOUR) / 255, edgecolor="none"))
            canvas.draw()
            self._pages[n_cells] = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
            while len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        return self._pages[n_cells]

    def image(self, cells: list[GridCell]) -> Image.Image:
        """The grid of `cells`, the query first, as an RGB image (composed by Pillow in C:
        labels blended through their coverage as a mask, thumbnails pasted 1:1)."""
        grid = Image.fromarray(self.page(len(cells)))  # a copy: the kept page is never drawn on
        max_text = CELL_W - 2 * GAP
        for i, cell in enumerate(cells):
            x, y = _cell_origin(i)
            for font, text, top, colour in (
                    (self.title_font, cell.title, 6, QUERY_COLOUR if i == 0 else TITLE_COLOUR),
                    (self.subtitle_font, cell.subtitle, 22, SUBTITLE_COLOUR)):
                grid.paste(colour, (x + GAP, y + top),
                           Image.fromarray(font.coverage(font.fit(text, max_text)), "L"))
            for j, side in enumerate((cell.front, cell.back)):
                thumb = _fit_into(side)
                h, w = thumb.shape[:2]
                slot = x + GAP + j * (THUMB + GAP)
                grid.paste((255, 255, 255), (slot, y + LABEL, slot + THUMB, y + LABEL + THUMB))
                grid.paste(Image.fromarray(thumb), (slot + (THUMB - w) // 2,
                                                    y + LABEL + (THUMB - h) // 2))
            if cell.verdict in VERDICT_FRAMES:
                colour, width = VERDICT_FRAMES[cell.verdict]
                ImageDraw.Draw(grid).rectangle((x + 2, y + 2, x + CELL_W - 3, y + CELL_H - 3),
                                               outline=colour, width=width)
        return grid

    def pixels(self, cells: list[GridCell]) -> np.ndarray:
        """(height, width, 3) uint8: the grid of `cells`, the query first."""
        return np.asarray(self.image(cells))

    def render(self, cells: list[GridCell]) -> bytes:
        """The grid as JPEG bytes."""
        buf = io.BytesIO()
        self.image(cells).save(buf, "JPEG", quality=JPEG_QUALITY)
        return buf.getvalue()


_renderer: GridRenderer | None = None


def render_grid(cells: list[GridCell]) -> bytes:
    """Draw cells (the query first) as one JPEG, with this process's shared renderer."""
    global _renderer
    if _renderer is None:
        _renderer = GridRenderer()
    return _renderer.render(cells)
